"""Mounting with mount(8) and /etc/fstab (SPEC section 5: "a mount.samplefs
helper for /etc/fstab").

mount(8) runs /sbin/mount.<type> for `mount -t <type>`; for `-t
fuse.samplefs` with no /sbin/mount.fuse.samplefs installed it runs fuse3's
/sbin/mount.fuse, which runs `samplefs SOURCE MOUNTPOINT -o OPTIONS`
through /bin/sh. mount(8) removes PATH from the helper's environment
(util-linux 2.38), so the shell's default PATH applies: the daemon must be
in /usr/local/bin, /usr/bin or /bin, as `cmake --install` puts it. These
tests install nothing: each mount(8) test runs in a private mount namespace
(unshare -m) where the build directory is bind-mounted over /usr/local/bin
(and, for our helper, the helper over /sbin/mount.fuse), then runs mount(8)
for real, checks that the mount answers, and unmounts:

  - `mount -t fuse.samplefs CONFIG DIR` (the mount.fuse3 route);
  - an fstab line, through `mount --fstab FILE DIR`, with fstab-only
    options (defaults, nofail, x-*) that libfuse would reject;
  - the same through our mount.samplefs helper;
  - our helper run directly, as mount(8) would run it;
  - `samplefs SOURCE DIR` by hand, with a word as SOURCE.

mount(8) of a FUSE type needs root (or a `user` fstab line): they skip,
saying so, as a normal user.
"""
import os
import shutil
import subprocess
import tempfile
import time
import unittest

from mountlib import SAMPLEFS, Mount, fuse_available, is_mounted

HELPER = os.path.join(os.path.dirname(os.path.abspath(SAMPLEFS)), "mount.samplefs")


def daemons_on(mnt):
    """Pids of samplefs processes whose command line names `mnt`."""
    pids = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if args and os.path.basename(args[0]) == b"samplefs" and mnt.encode() in args:
            pids.append(int(pid))
    return pids


class MountHelper(unittest.TestCase):
    def setUp(self):
        if not fuse_available():
            self.skipTest("/dev/fuse or fusermount3 is missing: mounted tests need FUSE")
        if os.geteuid() != 0:
            self.skipTest("mount(8) of a FUSE type needs root")
        if not shutil.which("mount") or not os.path.exists("/sbin/mount.fuse3"):
            self.skipTest("mount(8) or fuse3's mount.fuse3 is missing")
        self.tmp = tempfile.mkdtemp(prefix="samplefs-test-")
        self.m = Mount(self.tmp).init()  # config, catalog and mnt/; not started
        self.env = dict(os.environ,
                        PATH=os.path.dirname(os.path.abspath(SAMPLEFS)) + ":" + os.environ["PATH"])

    def tearDown(self):
        if is_mounted(self.m.mnt):
            subprocess.run(["umount", "-l", self.m.mnt], check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def run_ok(self, *cmd):
        r = subprocess.run(list(cmd), capture_output=True, text=True, env=self.env, timeout=60)
        if r.returncode != 0:
            self.fail(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}{r.stderr}\n"
                      f"log:\n{self.m.read_log()}")
        return r

    def check_mounted_and_unmount(self, writable=True):
        mnt = self.m.mnt
        # mount(8) returns once the daemon has mounted and detached.
        self.assertTrue(is_mounted(mnt), "mount returned but nothing is mounted")
        with open("/proc/self/mounts") as f:
            line = next(l for l in f if l.split()[1] == os.path.realpath(mnt))
        self.assertEqual(line.split()[2], "fuse.samplefs", line)
        ls = self.run_ok("ls", mnt).stdout.split()
        self.assertIn("species", ls)
        self.assertIn("slides", ls)
        if writable:
            os.mkdir(os.path.join(mnt, "species", "HeLa"))
            self.assertEqual(os.listdir(os.path.join(mnt, "species")), ["HeLa"])
        else:
            with self.assertRaises(OSError):
                os.mkdir(os.path.join(mnt, "species", "HeLa"))
        pids = daemons_on(mnt)
        self.assertEqual(len(pids), 1, f"samplefs daemons on {mnt}: {pids}")
        self.run_ok("umount", mnt)
        self.assertFalse(is_mounted(mnt))
        # The detached daemon exits by itself after the unmount.
        deadline = time.time() + 10
        while daemons_on(mnt) and time.time() < deadline:
            time.sleep(0.05)
        self.assertEqual(daemons_on(mnt), [], "the daemon did not exit after umount")

    def in_namespace(self, mount_cmd, helper=False, writable=True):
        """Runs mount_cmd (mount(8)) in a private mount namespace where
        /usr/local/bin holds the build's daemon; checks the mount there."""
        bindir = os.path.join(self.tmp, "bin")
        os.makedirs(bindir, exist_ok=True)
        os.symlink(os.path.abspath(SAMPLEFS), os.path.join(bindir, "samplefs"))
        mnt = self.m.mnt
        change = (f"mkdir {mnt}/species/HeLa && ls {mnt}/species" if writable
                  else f"if mkdir {mnt}/species/HeLa 2>/dev/null; then echo WROTE; else echo REFUSED; fi")
        script = "\n".join([
            "set -eu",
            f"mount --bind {bindir} /usr/local/bin",
            f"mount --bind {HELPER} /sbin/mount.fuse" if helper else ":",
            " ".join(mount_cmd),
            f"awk '$2 == \"{os.path.realpath(mnt)}\" {{ print \"TYPE\", $3 }}' /proc/self/mounts",
            f"ls {mnt}",
            change,
            f"umount {mnt}",
            f"awk '$2 == \"{os.path.realpath(mnt)}\"' /proc/self/mounts | wc -l",
        ])
        r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            self.fail(f"{mount_cmd} in a mount namespace failed ({r.returncode}):\n{r.stdout}{r.stderr}\n"
                      f"log:\n{self.m.read_log()}")
        out = r.stdout.split()
        self.assertIn("TYPE", out, r.stdout)
        self.assertEqual(out[out.index("TYPE") + 1], "fuse.samplefs", r.stdout)
        self.assertIn("species", out)
        self.assertIn("slides", out)
        if writable:
            self.assertIn("HeLa", out)
        else:
            self.assertIn("REFUSED", out)
        self.assertEqual(out[-1], "0", "still mounted after umount:\n" + r.stdout)
        # The detached daemon exits by itself after the unmount.
        deadline = time.time() + 10
        while daemons_on(mnt) and time.time() < deadline:
            time.sleep(0.05)
        self.assertEqual(daemons_on(mnt), [], "the daemon did not exit after umount")

    def fstab(self, options):
        path = os.path.join(self.tmp, "fstab")
        with open(path, "w") as f:
            f.write("# a test fstab\n"
                    f"{self.m.config}  {self.m.mnt}  fuse.samplefs  {options}  0  0\n")
        return path

    def test_mount_t_fuse_samplefs(self):
        self.in_namespace(["mount", "-t", "fuse.samplefs", self.m.config, self.m.mnt])
        # The catalog kept what was made through the mount.
        self.assertEqual(self.m.sql("SELECT name FROM species"), [("HeLa",)])

    def test_fstab_line(self):
        fstab = self.fstab("defaults,nofail,noatime,x-systemd.automount")
        self.in_namespace(["mount", "--fstab", fstab, self.m.mnt])

    def test_fstab_line_read_only(self):
        # Created first (a read-only mount cannot create the catalog).
        self.m.start()
        self.m.stop()
        fstab = self.fstab("ro,noauto,_netdev")
        self.in_namespace(["mount", "--fstab", fstab, self.m.mnt], writable=False)

    def test_fstab_line_through_our_helper(self):
        fstab = self.fstab("defaults,nofail,comment=lab-catalog")
        self.in_namespace(["mount", "--fstab", fstab, self.m.mnt], helper=True)

    def test_helper_as_mount_runs_it(self):
        # What mount(8) runs when the helper is installed as
        # /sbin/mount.fuse.samplefs: SOURCE DIR -o OPTIONS (and -n etc.).
        self.run_ok(HELPER, self.m.config, self.m.mnt, "-n", "-o", "rw,defaults,nofail,comment=x")
        self.check_mounted_and_unmount()

    def test_daemon_source_argument(self):
        # SOURCE with '/' is the configuration file; a word means the default
        # configuration ($SAMPLEFS_CONFIG here).
        self.env["SAMPLEFS_CONFIG"] = self.m.config
        self.run_ok(SAMPLEFS, "samplefs", self.m.mnt)
        self.check_mounted_and_unmount()
        r = subprocess.run([SAMPLEFS, "--config", "/nonexistent.conf", self.m.config, self.m.mnt],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("two configurations", r.stderr)
        self.assertFalse(is_mounted(self.m.mnt))

    def test_write_behind_min_free_values(self):
        # A size with a binary suffix or `off` mounts; anything else is a
        # usage error (exit 2) that names the option, and nothing is mounted.
        for good in ("512M", "2G", "0", "off"):
            self.run_ok(SAMPLEFS, "--config", self.m.config, self.m.mnt, "-o", f"write_behind_min_free={good}")
            hela = os.path.join(self.m.mnt, "species", "HeLa")
            if os.path.isdir(hela):
                os.rmdir(hela)  # made by the previous round's check
            self.check_mounted_and_unmount()
        for bad in ("", "12X", "1.5G", "-1", "G", "9999999999999999", "99999999999T"):
            r = subprocess.run([SAMPLEFS, "--config", self.m.config, self.m.mnt, "-o",
                                f"write_behind_min_free={bad}"],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 2, f"{bad!r}: {r.stderr}")
            self.assertIn(f"bad write_behind_min_free={bad} ", r.stderr)
            self.assertFalse(is_mounted(self.m.mnt), bad)


if __name__ == "__main__":
    unittest.main()
