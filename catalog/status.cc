#include "catalog/status.h"

#include <cstring>

namespace samplefs {

const char* CodeName(Code code) {
  switch (code) {
    case Code::kOk: return "OK";
    case Code::kNotFound: return "NotFound";
    case Code::kAlreadyExists: return "AlreadyExists";
    case Code::kReferenceMissing: return "ReferenceMissing";
    case Code::kNotEmpty: return "NotEmpty";
    case Code::kInvalidArgument: return "InvalidArgument";
    case Code::kNotADirectory: return "NotADirectory";
    case Code::kIsADirectory: return "IsADirectory";
    case Code::kNameTooLong: return "NameTooLong";
    case Code::kPermission: return "Permission";
    case Code::kReadOnly: return "ReadOnly";
    case Code::kBusy: return "Busy";
    case Code::kNoSpace: return "NoSpace";
    case Code::kTooBig: return "TooBig";
    case Code::kCorrupt: return "Corrupt";
    case Code::kTooNew: return "TooNew";
    case Code::kIo: return "IoError";
  }
  return "Unknown";
}

Status Status::FromErrno(int err, std::string message) {
  message += ": ";
  message += std::strerror(err);
  switch (err) {
    case ENOENT: return Status(Code::kNotFound, std::move(message), err);
    case EEXIST: return Status(Code::kAlreadyExists, std::move(message), err);
    case ENOSPC:
    case EDQUOT: return Status(Code::kNoSpace, std::move(message), err);
    case EROFS: return Status(Code::kReadOnly, std::move(message), err);
    case EACCES:
    case EPERM: return Status(Code::kPermission, std::move(message), err);
    case ENAMETOOLONG: return Status(Code::kNameTooLong, std::move(message), err);
    default: return Status(Code::kIo, std::move(message), err);
  }
}

int Status::to_errno() const {
  switch (code_) {
    case Code::kOk: return 0;
    case Code::kNotFound: return ENOENT;
    case Code::kAlreadyExists: return EEXIST;
    case Code::kReferenceMissing: return ENOENT;
    case Code::kNotEmpty: return ENOTEMPTY;
    case Code::kInvalidArgument: return EINVAL;
    case Code::kNotADirectory: return ENOTDIR;
    case Code::kIsADirectory: return EISDIR;
    case Code::kNameTooLong: return ENAMETOOLONG;
    case Code::kPermission: return sys_errno_ == EACCES ? EACCES : EPERM;
    case Code::kReadOnly: return EROFS;
    case Code::kBusy: return EBUSY;
    case Code::kNoSpace: return sys_errno_ ? sys_errno_ : ENOSPC;
    case Code::kTooBig: return E2BIG;
    case Code::kCorrupt: return EIO;
    case Code::kTooNew: return EPROTO;
    case Code::kIo: return sys_errno_ ? sys_errno_ : EIO;
  }
  return EIO;
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  return std::string(CodeName(code_)) + ": " + message_;
}

}  // namespace samplefs
