#include "catalog/schema_shared.h"

namespace samplefs::schema {

const char* const kTaggedTables[6] = {"species", "sample", "dye", "slide", "image", "entry"};

const char* const kV3Additions = R"SQL(
CREATE INDEX species_lower_name ON species(lower(name));
CREATE INDEX sample_lower_name ON sample(lower(name));
CREATE INDEX dye_lower_short_name ON dye(lower(short_name));
CREATE INDEX tag_lower_name ON tag(lower(name));
CREATE INDEX labelling_lower_structure ON labelling(lower(structure));
CREATE VIEW labelling_info AS
  SELECT l.id AS labelling_id, s.id AS slide_id, s.reference AS slide, sa.name AS sample,
         sp.name AS species, l.structure AS structure, l.isotype AS isotype,
         l.antibody AS antibody, d.short_name AS dye, d.long_name AS dye_long_name
    FROM labelling l JOIN slide s ON s.id = l.slide_id
    JOIN sample sa ON sa.id = s.sample_id JOIN species sp ON sp.id = sa.species_id
    JOIN dye d ON d.id = l.dye_id;
)SQL";

namespace {

constexpr const char* kFileInfo = "CREATE VIEW file_info AS";

// `text` with its one `from` replaced by `to`.
std::string Replaced(const std::string& text, const std::string& from, const std::string& to) {
  size_t at = text.find(from);
  return text.substr(0, at) + to + text.substr(at + from.size());
}

}  // namespace

std::string FileInfoV3(const std::string& views) {
  return Replaced(views.substr(views.find(kFileInfo)), "         ii.*\n",
                  "         ii.*,\n"
                  "         'slides/' || ii.slide || '/images/' || ii.image || '/files/' || ep.path AS mount_path\n");
}

std::string ViewsV3(const std::string& views) {
  return views.substr(0, views.find(kFileInfo)) + FileInfoV3(views);
}

std::string FileInfoV4(const std::string& views) {
  return Replaced(FileInfoV3(views), "WHERE e.type = 'file';", "WHERE e.type = 'file' AND ep.path NOT LIKE '/%';");
}

}  // namespace samplefs::schema
