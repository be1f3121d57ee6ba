// Named crash points for crash-consistency tests (issue "Nothing lost").
//
// When the environment variable SAMPLEFS_CRASH_AT names a point, the
// process _exit()s there (no destructors, no flushing: like kill -9).
// SAMPLEFS_CRASH_AFTER=N skips the first N hits. Costs one cached getenv
// per process; inert in production.
#pragma once

namespace samplefs {

// Crash now if SAMPLEFS_CRASH_AT == point.
void CrashPoint(const char* point);

}  // namespace samplefs
