"""How a mount ends, and what it refuses to start with (issue 13).

- Signals (SIGTERM, SIGINT, SIGHUP) and unmounts (`fusermount3 -u` while
  busy, `umount -l` and `fusermount3 -uz` under a running cp, rsync or
  tar): every version whose writer closed it is committed before the daemon
  exits; a version still open for writing is never committed (the file
  keeps its previous version, the staging file is removed); the daemon
  exits 0 with a log line saying what it committed and dropped.
- A daemon crash (kill -9) loses nothing closed: the next mount (or
  `samplectl fsck --repair`) verifies the sealed versions and records them;
  one whose bytes changed after its seal is dropped and reported.
- Refusals: a read-write mount of a catalog that does not exist, a
  non-empty mountpoint, a mountpoint that is already a samplefs mount.
- Derived fields right at once: user.samplefs.hash/.size right after
  close() describe the version readers see.
- fsync costs what was written: a file fsynced every few MiB grows the
  store by its size, not by the sum of its prefixes.
"""
import glob
import json
import os
import random
import re
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

from mountlib import SAMPLECTL, SAMPLEFS, Mount, MountedTestCase, fuse_available, is_mounted


def xxh128(data):
    out = subprocess.run(["xxhsum", "-H2", "-"], input=data, capture_output=True, check=True).stdout
    return out.split()[0].decode()


def blob(seed, size):
    return random.Random(seed).randbytes(size)


SUMMARY = re.compile(r"unmounted \S+: (\d+) file version\(s\) committed, (\d+) still open for writing dropped, "
                     r"(\d+) not recorded")


class Lifecycle(MountedTestCase):
    def files_records(self):
        rows = self.m.sql("SELECT e.name, e.size, e.hash FROM entry e WHERE e.type = 'file'")
        return {r[0]: (r[1], r[2]) for r in rows}

    def staging_files(self):
        return [p for p in glob.glob(os.path.join(self.m.store, "staging", "**", "*"), recursive=True)
                if os.path.isfile(p) and not p.endswith("/lock")]

    def wait_exit(self, timeout=30):
        rc = self.m.wait(timeout=timeout)
        self.m._forget()
        return rc

    def write_closed(self, files, n, seed):
        want = {}
        for i in range(n):
            data = blob(f"{seed}-{i}", 1000 + 997 * i)
            with open(os.path.join(files, f"closed{i:03d}.tif"), "wb") as f:
                f.write(data)
            want[f"closed{i:03d}.tif"] = data
        return want

    def assert_contents(self, files, want):
        for name, data in want.items():
            with open(os.path.join(files, name), "rb") as f:
                self.assertEqual(f.read(), data, f"{name} is not what was closed")
        recs = self.files_records()
        for name, data in want.items():
            self.assertEqual(recs[name], (len(data), xxh128(data)), f"record of {name}")

    # -- signals ---------------------------------------------------------
    def check_signal(self, sig):
        files = self.make_image(image=f"sig{sig}")
        old = blob("old", 300000)
        with open(os.path.join(files, "existing.raw"), "wb") as f:
            f.write(old)
        self.m.settle()
        want = self.write_closed(files, 40, sig)
        # Still open for writing when the signal comes: a new file and an
        # overwrite of an existing one.
        fnew = open(os.path.join(files, "open-new.raw"), "wb")
        fnew.write(blob("partial", 5 * 1024 * 1024))
        fnew.flush()
        fold = open(os.path.join(files, "existing.raw"), "r+b")
        fold.write(b"X" * 1000)
        fold.flush()
        log_before = len(self.m.read_log())
        self.m.kill(sig)
        rc = self.wait_exit()
        for f in (fnew, fold):
            try:
                f.close()
            except OSError:
                pass  # the mount is gone: its close cannot succeed
        self.assertEqual(rc, 0, f"the daemon exited {rc} after signal {sig}")
        self.assertFalse(is_mounted(self.m.mnt), "the mount is left behind")
        log = self.m.read_log()[log_before:]
        mo = SUMMARY.search(log)
        self.assertIsNotNone(mo, f"no summary line in the log:\n{log}")
        self.assertEqual(mo.group(2), "2", log)  # the two open versions
        self.assertEqual(mo.group(3), "0", log)
        self.assertEqual(self.staging_files(), [], "staging files left after a clean end")
        self.m.start()
        self.assert_contents(files, want)
        with open(os.path.join(files, "existing.raw"), "rb") as f:
            self.assertEqual(f.read(), old, "a version still open was committed")
        self.assertEqual(self.files_records()["open-new.raw"][0], 0, "a version still open was committed")

    def test_sigterm(self):
        self.check_signal(signal.SIGTERM)

    def test_sigint(self):
        self.check_signal(signal.SIGINT)

    def test_sighup(self):
        self.check_signal(signal.SIGHUP)

    # -- unmounts --------------------------------------------------------
    def test_busy_unmount_changes_nothing(self):
        files = self.make_image()
        path = os.path.join(files, "busy.raw")
        data = blob("busy", 2 * 1024 * 1024)
        with open(path, "wb") as f:
            f.write(data[:1024 * 1024])
            r = subprocess.run(["fusermount3", "-u", self.m.mnt], capture_output=True, text=True)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("busy", r.stderr.lower())
            self.assertTrue(is_mounted(self.m.mnt))
            f.write(data[1024 * 1024:])
        self.m.settle()
        self.assert_contents(files, {"busy.raw": data})

    def lazy_unmount_during(self, tool, unmount_cmd):
        files = self.make_image(image=f"{tool}-{unmount_cmd[0]}")
        src = os.path.join(self.tmp, f"src-{tool}")
        want = {}
        for i in range(300):
            rel = f"d{i % 3}/f{i:03d}.tif"
            data = blob(f"{tool}-{i}", 20000 + 4001 * i)
            os.makedirs(os.path.join(src, os.path.dirname(rel)), exist_ok=True)
            with open(os.path.join(src, rel), "wb") as f:
                f.write(data)
            want[rel] = data
        dest = os.path.join(files, "copy")
        if tool == "cp":
            cmd = ["cp", "-r", src, dest]
        elif tool == "rsync":
            cmd = ["rsync", "-a", src + "/", dest + "/"]
        else:
            tarball = os.path.join(self.tmp, f"{tool}.tar")
            subprocess.run(["tar", "-cf", tarball, "-C", src, "."], check=True)
            os.mkdir(dest)
            cmd = ["tar", "-xf", tarball, "-C", dest]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.2)
        self.assertIsNone(proc.poll(), f"{tool} ended before the unmount: the test needs a bigger tree")
        subprocess.run(unmount_cmd + [self.m.mnt], check=True)
        proc.wait(timeout=120)
        rc = self.wait_exit(60)
        self.assertEqual(rc, 0)
        self.assertIsNotNone(SUMMARY.search(self.m.read_log()), self.m.read_log())
        self.assertEqual([p for p in self.staging_files() if p.endswith(".tmp")], [])
        self.m.start()
        # Every recorded file is its source whole, or the empty file it was
        # created as (never closed): never a part of it.
        complete = 0
        for path, (size, h) in self.files_by_path("copy").items():
            rel = path
            mo = re.match(r"^(.*/)?\.(.+)\.[A-Za-z0-9]{6}$", rel)  # rsync's temporary name
            src_rel = (mo.group(1) or "") + mo.group(2) if mo else rel
            self.assertIn(src_rel, want, f"unexpected file {rel}")
            if size == 0:
                continue
            self.assertEqual((size, h), (len(want[src_rel]), xxh128(want[src_rel])),
                             f"{tool}: {rel} was recorded partly after {' '.join(unmount_cmd)}")
            complete += 1
        print(f"{tool}, {' '.join(unmount_cmd)}: {complete} of {len(want)} files recorded whole, none in part")
        return complete

    def files_by_path(self, top):
        rows = self.m.sql("SELECT p.path, e.size, e.hash FROM entry_path p JOIN entry e ON e.id = p.id "
                          "WHERE e.type = 'file'")
        out = {}
        for path, size, h in rows:
            if path.startswith(top + "/"):
                out[path[len(top) + 1:]] = (size, h)
            elif "/" + top + "/" in path:
                out[path.split("/" + top + "/", 1)[1]] = (size, h)
        return out

    def test_lazy_unmounts_during_copies(self):
        for tool in ("cp", "rsync", "tar"):
            for cmd in (["umount", "-l"], ["fusermount3", "-uz"]):
                with self.subTest(tool=tool, unmount=" ".join(cmd)):
                    self.lazy_unmount_during(tool, cmd)

    # -- crashes ---------------------------------------------------------
    def test_kill9_loses_nothing_closed(self):
        files = self.make_image()
        self.m.settle()
        want = self.write_closed(files, 120, "kill")
        fopen = open(os.path.join(files, "never-closed.raw"), "wb")
        fopen.write(b"y" * 100000)
        fopen.flush()
        self.m.kill()  # no settle: most closed files are not recorded yet
        try:
            fopen.close()
        except OSError:
            pass
        self.m.start()
        self.assertRegex(self.m.read_log(), r"recovered after a daemon's death: \d+ closed file version")
        self.assert_contents(files, want)
        self.assertEqual(self.files_records()["never-closed.raw"][0], 0)
        self.assertEqual(self.m.errors().strip(), "")
        r = self.run_tool(SAMPLECTL, "--config", self.m.config, "fsck", "--verify")
        self.assertIn("0 problems", r.stdout + r.stderr)

    def die_before_recording(self, name, data):
        """Writes and closes `name`; the daemon dies in the commit after the
        close, before the file is linked into the store (a crash point)."""
        self.m.stop()
        self.m.start(env={"SAMPLEFS_CRASH_AT": "after-staging-fsync"})
        files = self.make_image()
        with open(os.path.join(files, name), "wb") as f:
            f.write(data)
        self.assertEqual(self.m.wait(timeout=30), 99, "the daemon did not die at the crash point")
        self.m.kill()
        return files

    def sealed_staging(self):
        """{file name: staging path} of the versions a dead daemon sealed:
        the live seals of each session's seals.log (a line is "<checksum>
        <json>"; the latest line of a staging name wins, a "done" line ends
        it)."""
        out = {}
        for log in glob.glob(os.path.join(self.m.store, "staging", "*.d", "seals.log")):
            live = {}
            with open(log) as f:
                for line in f:
                    record = json.loads(line.split(" ", 1)[1])
                    if "done" in record:
                        live.pop(record["done"], None)
                    else:
                        live[record["staging"]] = record["path"].rsplit("/", 1)[-1]
            for staging, name in live.items():
                out[name] = os.path.join(os.path.dirname(log), staging)
        return out

    def test_a_version_changed_after_its_seal_is_dropped_and_reported(self):
        bad = blob("bad", 80000)
        files = self.die_before_recording("bad.tif", bad)
        stage = self.sealed_staging()
        self.assertIn("bad.tif", stage, "no seal was left for a closed file")
        with open(stage["bad.tif"], "r+b") as f:
            f.write(b"\0\1\2")
        self.m.start()
        self.assertEqual(self.files_records()["bad.tif"][0], 0)
        self.assertRegex(self.m.errors(), r"bad\.tif: its bytes changed after it was sealed")
        self.assertRegex(self.m.read_log(), r"recovery dropped .*bad\.tif")
        self.assertEqual(self.sealed_staging(), {})
        # The mount goes on as usual.
        good = blob("good", 70000)
        with open(os.path.join(files, "good.tif"), "wb") as f:
            f.write(good)
        self.m.settle()
        self.assertEqual(self.files_records()["good.tif"], (len(good), xxh128(good)))

    def test_fsck_repair_records_what_a_dead_daemon_sealed(self):
        data = blob("repair", 123457)
        files = self.die_before_recording("sealed.tif", data)
        self.assertEqual(self.files_records()["sealed.tif"][0], 0)
        r = self.run_tool(SAMPLECTL, "--config", self.m.config, "fsck", "--repair")
        self.assertIn("recorded 1 file version", r.stdout + r.stderr)
        self.assertEqual(self.files_records()["sealed.tif"], (len(data), xxh128(data)))
        self.assertEqual(self.sealed_staging(), {})
        self.m.start()
        with open(os.path.join(files, "sealed.tif"), "rb") as f:
            self.assertEqual(f.read(), data)

    # -- derived fields --------------------------------------------------
    def test_hash_and_size_right_after_close(self):
        files = self.make_image()
        src = os.path.join(self.tmp, "src.bin")
        for i in range(30):
            data = blob(f"h{i}", 1 + 33331 * i)
            with open(src, "wb") as f:
                f.write(data)
            dst = os.path.join(files, f"h{i:02d}.tif")
            subprocess.run(["cp", src, dst], check=True)
            # No sync: the commit may still be on its way.
            self.assertEqual(os.getxattr(dst, "user.samplefs.hash").decode(), "xxh3-128:" + xxh128(data))
            self.assertEqual(os.getxattr(dst, "user.samplefs.size").decode(), str(len(data)))

    # -- fsync -----------------------------------------------------------
    def store_bytes(self):
        total = 0
        for d, _, names in os.walk(os.path.join(self.m.store, "objects")):
            total += sum(os.path.getsize(os.path.join(d, n)) for n in names)
        return total

    def test_periodic_fsync_grows_the_store_by_the_file_size(self):
        files = self.make_image()
        self.m.settle()
        before = self.store_bytes()
        chunk = blob("fsync", 1024 * 1024)
        size = 128 * 1024 * 1024
        with open(os.path.join(files, "acq.raw"), "wb") as f:
            for i in range(size // len(chunk)):
                f.write(chunk)
                if (i + 1) % 8 == 0:
                    f.flush()
                    os.fsync(f.fileno())
        self.m.settle()
        grown = self.store_bytes() - before
        self.assertEqual(grown, size, f"the store grew by {grown} bytes for a {size}-byte file")
        self.assertEqual(self.files_records()["acq.raw"][0], size)


class Refusals(unittest.TestCase):
    def setUp(self):
        if not fuse_available():
            self.skipTest("/dev/fuse or fusermount3 is missing: mounted tests need FUSE")
        self.tmp = tempfile.mkdtemp(prefix="samplefs-test-")
        self.m = Mount(self.tmp)

    def tearDown(self):
        self.m.stop()
        for p in glob.glob(os.path.join(self.tmp, "*")):
            if os.path.isdir(p) and is_mounted(p):
                subprocess.run(["fusermount3", "-uz", p], check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def daemon(self, *args, mnt=None):
        return subprocess.run([SAMPLEFS, "--config", self.m.config, mnt or self.m.mnt, *args],
                              capture_output=True, text=True, timeout=60)

    def test_missing_catalog_is_refused_unless_create(self):
        r = self.daemon()
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("samplectl init", r.stderr)
        self.assertIn("-o create", r.stderr)
        self.assertFalse(os.path.exists(self.m.catalog), "a catalog was created anyway")
        self.assertFalse(os.path.exists(self.m.store), "a store was created anyway")
        self.assertFalse(is_mounted(self.m.mnt))
        r = self.daemon("-o", "create")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(is_mounted(self.m.mnt))
        self.assertTrue(os.path.exists(self.m.catalog))
        subprocess.run(["fusermount3", "-u", self.m.mnt], check=True)

    def test_nonempty_mountpoint_is_refused_unless_nonempty(self):
        self.m.init()
        with open(os.path.join(self.m.mnt, "precious.txt"), "w") as f:
            f.write("do not hide me")
        r = self.daemon()
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("not empty", r.stderr)
        self.assertIn("-o nonempty", r.stderr)
        self.assertFalse(is_mounted(self.m.mnt))
        r = self.daemon("-o", "nonempty")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(is_mounted(self.m.mnt))
        self.assertIn("species", os.listdir(self.m.mnt))
        subprocess.run(["fusermount3", "-u", self.m.mnt], check=True)
        self.assertEqual(os.listdir(self.m.mnt), ["precious.txt"])

    def test_second_mount_on_a_samplefs_mount_is_refused(self):
        self.m.init()
        r = self.daemon()
        self.assertEqual(r.returncode, 0, r.stderr)
        try:
            r2 = self.daemon()
            self.assertEqual(r2.returncode, 1, r2.stderr)
            self.assertIn("already a samplefs mount", r2.stderr)
            with open("/proc/self/mounts") as f:
                stacked = [l for l in f if l.split()[1] == os.path.realpath(self.m.mnt)]
            self.assertEqual(len(stacked), 1, stacked)
        finally:
            subprocess.run(["fusermount3", "-u", self.m.mnt], check=True)
        deadline = time.time() + 10
        while time.time() < deadline and subprocess.run(["pgrep", "-f", f"samplefs --config {self.m.config}"],
                                                         capture_output=True).returncode == 0:
            time.sleep(0.05)


if __name__ == "__main__":
    unittest.main()
