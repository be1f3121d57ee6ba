// samplectl query (slides matching an expression) and samplectl export (any
// table or view as CSV or JSON, for pandas).
#include <spdlog/spdlog.h>

#include <map>

#include "catalog/fields.h"
#include "catalog/query.h"
#include "tools/samplectl/common.h"

namespace samplefs::ctl {

namespace {

enum class Format { kTable, kCsv, kJson };

// ---------------------------------------------------------------------------
// query

struct QueryOptions {
  std::string expression;
  bool csv = false;
  bool json = false;
  std::string output;
};

struct SlideRow {
  Slide slide;
  std::string sample, species;
  std::vector<std::pair<Labelling, std::string>> labellings;  // with dye short name
  std::vector<std::string> tags;
};

const std::vector<std::string> kQueryColumns = {"reference", "sample",     "species", "creator",
                                                "created",   "labellings", "tags"};

std::string Join(const std::vector<std::string>& v, const char* sep) {
  std::string out;
  for (const auto& s : v) {
    if (!out.empty()) out += sep;
    out += s;
  }
  return out;
}

// Display width of UTF-8 text (code points; good enough for names).
size_t Width(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s)
    if ((c & 0xC0) != 0x80) ++n;
  return n;
}

int RunQuery(Context& ctx, const QueryOptions& o) {
  Query query;
  if (!o.expression.empty()) {
    auto parsed = Query::Parse(o.expression);
    if (!parsed.ok()) return UsageError("bad query expression: {}", parsed.status().message());
    query = std::move(parsed).value();
  }
  int rc = ctx.Open(OpenMode::kReadOnly);
  if (rc != kExitOk) return rc;
  Catalog& cat = *ctx.catalog;
  // A misspelt key would match nothing and look like an empty answer.
  if (Status s = cat.CheckQueryKeys(query); !s.ok()) {
    spdlog::error("bad query expression: {}", s.message());
    return s.code() == Code::kReferenceMissing ? kExitUsage : kExitProblems;
  }
  Format format = o.csv ? Format::kCsv : o.json ? Format::kJson : Format::kTable;

  Output out;
  if (Status s = out.Open(o.output); !s.ok()) return UsageError("{}", s.message());
  std::map<int64_t, Sample> samples;
  std::map<int64_t, std::string> species, dyes;
  auto row_of = [&](const Slide& s) -> Result<SlideRow> {
    SlideRow r{s, "", "", {}, {}};
    auto sa = samples.find(s.sample_id);
    if (sa == samples.end()) {
      SFS_ASSIGN_OR_RETURN(Sample fetched, cat.SampleById(s.sample_id));
      sa = samples.emplace(s.sample_id, fetched).first;
    }
    r.sample = sa->second.name;
    auto sp = species.find(sa->second.species_id);
    if (sp == species.end()) {
      SFS_ASSIGN_OR_RETURN(Species fetched, cat.SpeciesById(sa->second.species_id));
      sp = species.emplace(fetched.id, fetched.name).first;
    }
    r.species = sp->second;
    SFS_ASSIGN_OR_RETURN(auto labellings, cat.LabellingsOfSlide(s.id));
    for (auto& l : labellings) {
      auto d = dyes.find(l.dye_id);
      if (d == dyes.end()) {
        SFS_ASSIGN_OR_RETURN(Dye fetched, cat.DyeById(l.dye_id));
        d = dyes.emplace(fetched.id, fetched.short_name).first;
      }
      r.labellings.emplace_back(l, d->second);
    }
    SFS_ASSIGN_OR_RETURN(r.tags, cat.TagsOf(Entity::kSlide, s.id));
    return r;
  };

  std::vector<std::vector<std::string>> table;  // table format only: widths need every row
  if (format == Format::kCsv) out.Write(CsvRow(kQueryColumns));
  if (format == Format::kJson) out.Write("[");
  int64_t after = 0, count = 0;
  for (;;) {
    auto page = cat.ListSlides(query, after, 500);
    if (!page.ok()) {
      spdlog::error("query failed: {}", page.status().message());
      return page.status().code() == Code::kInvalidArgument ? kExitUsage : kExitProblems;
    }
    if (page->empty()) break;
    for (const auto& s : *page) {
      after = s.id;
      auto r = row_of(s);
      if (!r.ok()) {
        spdlog::error("query failed: {}", r.status().message());
        return kExitProblems;
      }
      std::vector<std::string> fields = {r->slide.reference, r->sample,       r->species,
                                         r->slide.creator,   r->slide.created, JoinLabellings(r->labellings),
                                         Join(r->tags, ",")};
      if (format == Format::kCsv) {
        out.Write(CsvRow(fields));
      } else if (format == Format::kJson) {
        Json j;
        j["reference"] = r->slide.reference;
        j["sample"] = r->sample;
        j["species"] = r->species;
        j["creator"] = r->slide.creator;
        j["created"] = r->slide.created;
        j["modified"] = r->slide.modified;
        j["notes"] = r->slide.notes;
        Json ls = Json::array();
        for (const auto& [l, dye] : r->labellings)
          ls.push_back(Json{{"structure", l.structure}, {"dye", dye}, {"isotype", l.isotype},
                            {"antibody", l.antibody}});
        j["labellings"] = ls;
        j["tags"] = r->tags;
        out.Write(std::string(count ? ",\n" : "\n") + JsonText(j));
      } else {
        table.push_back(std::move(fields));
      }
      ++count;
    }
  }
  if (format == Format::kJson) out.Write(count ? "\n]\n" : "]\n");
  if (format == Format::kTable) {
    std::vector<size_t> w(kQueryColumns.size());
    for (size_t c = 0; c < w.size(); ++c) w[c] = Width(kQueryColumns[c]);
    for (const auto& row : table)
      for (size_t c = 0; c < w.size(); ++c) w[c] = std::max(w[c], Width(row[c]));
    auto line = [&](const std::vector<std::string>& row) {
      std::string s;
      for (size_t c = 0; c < row.size(); ++c) {
        s += row[c];
        if (c + 1 < row.size()) s += std::string(w[c] - Width(row[c]) + 2, ' ');
      }
      while (!s.empty() && s.back() == ' ') s.pop_back();
      out.Write(s + "\n");
    };
    line(kQueryColumns);
    for (const auto& row : table) line(row);
    if (!ctx.globals.quiet)
      spdlog::info("{} slide{}", count, count == 1 ? "" : "s");
  }
  return CloseOutput(out);
}

// ---------------------------------------------------------------------------
// export

struct ExportOptions {
  std::string name;
  bool csv = false;
  bool json = false;
  std::string output;
};

std::string QuoteIdent(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

int RunExport(Context& ctx, const ExportOptions& o) {
  int rc = ctx.Open(OpenMode::kReadOnly);
  if (rc != kExitOk) return rc;
  Database& db = ctx.catalog->db();

  // The name is only ever used after it was found among the catalog's
  // relations, and it is quoted as an identifier even then: user text
  // never becomes SQL.
  auto relations = db.ListRelations();
  if (!relations.ok()) {
    spdlog::error("{}", relations.status().message());
    return kExitProblems;
  }
  const std::vector<std::string>& known = *relations;
  std::string name;
  for (const auto& n : known)
    if (n == o.name) name = n;
  if (name.empty()) {
    spdlog::error("no table or view named '{}'; choose one of: {}", o.name, Join(known, ", "));
    return kExitUsage;
  }
  auto listed = db.ColumnsOf(name);
  if (!listed.ok()) {
    spdlog::error("{}", listed.status().message());
    return kExitProblems;
  }
  const std::vector<std::string>& columns = *listed;
  // Each value comes with its SQL type, so JSON gets numbers as numbers.
  std::string sql = "SELECT ";
  for (size_t i = 0; i < columns.size(); ++i) {
    if (i) sql += ", ";
    sql += QuoteIdent(columns[i]) + ", " + db.TypeOfSql(QuoteIdent(columns[i]));
  }
  sql += " FROM " + QuoteIdent(name);

  Output out;
  if (Status s = out.Open(o.output); !s.ok()) return UsageError("{}", s.message());
  auto st = db.Prepare(sql);
  if (!st.ok()) {
    spdlog::error("{}", st.status().message());
    return kExitProblems;
  }
  StatementScope scope(**st);
  if (!o.json) out.Write(CsvRow(columns));
  else out.Write("[");
  int64_t count = 0;
  for (;;) {
    auto row = scope->Step();
    if (!row.ok()) {
      spdlog::error("export of {} failed: {}", name, row.status().message());
      return kExitProblems;
    }
    if (!*row) break;
    if (!o.json) {
      std::vector<std::string> fields;
      for (size_t i = 0; i < columns.size(); ++i) {
        int c = static_cast<int>(2 * i);
        fields.push_back(scope->IsNull(c) ? std::string() : scope->Text(c));
      }
      out.Write(CsvRow(fields));
    } else {
      Json j = Json::object();
      for (size_t i = 0; i < columns.size(); ++i) {
        int c = static_cast<int>(2 * i);
        std::string type = scope->Text(c + 1);
        if (type == "null") j[columns[i]] = nullptr;
        else if (type == "integer") j[columns[i]] = scope->Int(c);
        else if (type == "real") j[columns[i]] = std::stod(scope->Text(c));
        else j[columns[i]] = scope->Text(c);
      }
      out.Write(std::string(count ? ",\n" : "\n") + JsonText(j));
    }
    ++count;
  }
  if (o.json) out.Write(count ? "\n]\n" : "]\n");
  if (int closed = CloseOutput(out); closed != kExitOk) return closed;
  spdlog::debug("exported {} rows of {}", count, name);
  return kExitOk;
}

}  // namespace

void AddQueryCommand(CLI::App& app, Commands& out) {
  auto [sub, o] = AddCommand<QueryOptions>(app, out, "query",
      "List the slides matching EXPR, the same key=value[,key=value...] expressions as the\n"
      "mount's query/ folder (keys: species, sample, dye, structure, tag, creator, user, created,\n"
      "modified, acquired, after, before, or any annotation key of a slide). Values: a|b either,\n"
      "* any text; !key=value negates; key<value and key>value compare dates and numbers.\n"
      "Names match regardless of case when only one name does. No EXPR: every slide.", RunQuery);
  sub->add_option("EXPR", o->expression, "Query expression, e.g. species=HeLa,dye=A647,tag=good");
  auto* csv = sub->add_flag("--csv", o->csv, "CSV with a header row");
  auto* json = sub->add_flag("--json", o->json, "A JSON array of objects");
  csv->excludes(json);
  sub->add_option("-o,--output", o->output, "Write to FILE instead of standard output");
}

void AddExportCommand(CLI::App& app, Commands& out) {
  auto [sub, o] = AddCommand<ExportOptions>(app, out, "export",
      "Write a table or view of the catalog (e.g. file_info, slide_info, image_info, species)\n"
      "as CSV (default) or JSON, readable by pandas.read_csv / pandas.read_json.", RunExport);
  sub->add_option("TABLE_OR_VIEW", o->name, "Table or view name")->required();
  auto* csv = sub->add_flag("--csv", o->csv, "CSV with a header row (the default)");
  auto* json = sub->add_flag("--json", o->json, "A JSON array of objects");
  csv->excludes(json);
  sub->add_option("-o,--output", o->output, "Write to FILE instead of standard output");
}

}  // namespace samplefs::ctl
