// Status and Result<T>: the error currency of catalog/ and fs/.
//
// Every fallible operation in catalog/ returns a Status or a Result<T>; no
// exception leaves catalog/. A Status carries a Code (what went wrong, in the
// catalog's terms) and a message meant for a person ("species 'HeLa' already
// exists"). The mapping from Code to errno lives in one place, to_errno(),
// so the FUSE layer never decides an errno on its own.
#pragma once

#include <cerrno>
#include <string>
#include <utility>
#include <variant>

namespace samplefs {

enum class Code {
  kOk = 0,
  kNotFound,          // no such record / object             -> ENOENT
  kAlreadyExists,     // a unique key is taken               -> EEXIST
  kReferenceMissing,  // a foreign key points nowhere        -> ENOENT
  kNotEmpty,          // record still has children           -> ENOTEMPTY
  kInvalidArgument,   // bad name, bad value, bad document   -> EINVAL
  kNotADirectory,     // a directory operation on a file     -> ENOTDIR
  kIsADirectory,      // a file operation on a directory     -> EISDIR
  kNameTooLong,       // name over 255 bytes                 -> ENAMETOOLONG
  kPermission,        // operation has no meaning here       -> EPERM
  kReadOnly,          // read-only catalog or field          -> EROFS
  kBusy,              // catalog locked past the busy timeout-> EBUSY
  kNoSpace,           // the store's filesystem is full      -> ENOSPC
  kTooBig,            // value over a size limit             -> E2BIG
  kCorrupt,           // object bytes do not match its hash  -> EIO
  kTooNew,            // catalog schema newer than program   -> EPROTO
  kIo,                // any other system error (errno kept)
};

class Status {
 public:
  Status() = default;  // OK
  Status(Code code, std::string message, int sys_errno = 0)
      : code_(code), sys_errno_(sys_errno), message_(std::move(message)) {}

  static Status Ok() { return {}; }
  // Maps a system errno to the closest Code, keeping the errno itself.
  static Status FromErrno(int err, std::string message);

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // The errno the kernel should see for this status (0 when OK).
  int to_errno() const;

  bool is_not_found() const { return code_ == Code::kNotFound; }
  bool is_exists() const { return code_ == Code::kAlreadyExists; }

  // "NotFound: species 'HeLa' does not exist"
  std::string ToString() const;

 private:
  Code code_ = Code::kOk;
  int sys_errno_ = 0;
  std::string message_;
};

const char* CodeName(Code code);

// Result<T>: a value or a non-OK Status. Checking ok() before value() is
// the caller's duty; value() on an error aborts (a programming error).
template <class T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {}  // NOLINT
  Result(Code code, std::string message) : v_(Status(code, std::move(message))) {}

  bool ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return ok(); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace samplefs

// Propagate a non-OK Status from an expression returning Status.
#define SFS_RETURN_IF_ERROR(expr)                  \
  do {                                             \
    ::samplefs::Status _sfs_st = (expr);           \
    if (!_sfs_st.ok()) return _sfs_st;             \
  } while (0)

#define SFS_CONCAT_INNER(a, b) a##b
#define SFS_CONCAT(a, b) SFS_CONCAT_INNER(a, b)
// Declares `lhs` from a Result<T> expression or returns its Status.
#define SFS_ASSIGN_OR_RETURN(lhs, expr) \
  SFS_ASSIGN_OR_RETURN_IMPL(SFS_CONCAT(_sfs_r_, __LINE__), lhs, expr)
#define SFS_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return tmp.status();             \
  lhs = std::move(tmp).value()
