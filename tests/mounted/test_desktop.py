"""Issue 17: deleting from KDE's Dolphin under Xvfb, and KIO's trash from
the command line (kioclient5), on a daemonized mount with a throwaway HOME.

What KIO does (KDE Frameworks 5.103, Debian 12), found with these tests and
KIO's debug log (docs/DECISIONS.md "Trash", "KDE"): the mount's
.Trash-<uid> passes every check of KIO's TrashImpl::trashForMountPoint
(a directory, not a symlink, owned by the uid, rwx for it, with files/ and
info/), but KIO then asks Solid for a device whose mount point is the
mount's, and takes a topdir trash only for a Solid block device or network
share. Solid's fstab backend knows only nfs, nfs4, smbfs, cifs, smb3,
fuse.sshfs, fuse.encfs, fuse.cryfs, fuse.gocryptfs and overlay mounts (and
UDisks2 only block devices), so for fuse.samplefs -- as for every other FUSE
filesystem -- the query finds nothing and KIO falls back to the home trash:
it copies the file into ~/.local/share/Trash and deletes the record. Even a
mount that calls itself fuse.sshfs gets the home trash (Solid finds it, KIO
still gives it no trash id). Nothing the filesystem answers changes that;
the fix belongs in KIO (a trash id per mount point for any mount whose
topdir trash passes the checks, as KIO already does on macOS).

So these tests pin what happens: Dolphin's Delete and `kioclient5 move
FILE trash:/` take the file out of files/ without growing the store, and
the copy lands in the home trash. If KIO starts using the mount's trash,
they fail on the home trash being empty: then update docs/DECISIONS.md and
assert the catalog's trash instead. `gio trash` and GVfs (Nautilus) use the
mount's trash (test_trash.py).

Skips, saying which, when dolphin, Xvfb, xdotool, dbus-run-session or
kioclient5 are missing (tools/install-deps.sh installs them).
"""
import os
import shutil
import signal
import subprocess
import time
import unittest

from mountlib import write_random
from trashlib import TrashTestCase

TOOLS = {name: shutil.which(name) for name in ("dolphin", "Xvfb", "xdotool", "dbus-run-session", "kioclient5")}


def missing(*names):
    gone = [n for n in names if TOOLS[n] is None]
    return f"{', '.join(gone)} not installed (tools/install-deps.sh installs them)" if gone else None


class DesktopTestCase(TrashTestCase):
    daemonize = True  # as users run it

    def setUp(self):
        super().setUp()
        runtime = os.path.join(self.desk, "run")
        os.makedirs(runtime, mode=0o700)
        # Every process of the session (KIO's workers detach into sessions
        # of their own) carries this marker: tearDown ends exactly those.
        self.marker = f"SAMPLEFS_DESKTOP_TEST={self.desk}"
        self.env.update(XDG_RUNTIME_DIR=runtime,
                        XDG_CONFIG_HOME=os.path.join(self.home, ".config"),
                        XDG_CACHE_HOME=os.path.join(self.home, ".cache"),
                        SAMPLEFS_DESKTOP_TEST=self.desk,
                        QT_LOGGING_RULES="kf.kio.workers.trash.debug=true")
        self.env.pop("DBUS_SESSION_BUS_ADDRESS", None)
        self.procs = []

    def tearDown(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        seen = set()
        deadline = time.time() + 10
        while self.marked_pids() and time.time() < deadline:
            self.signal_marked(signal.SIGTERM, seen)
            time.sleep(0.2)
        self.signal_marked(signal.SIGKILL, seen)
        # Detached workers (and a D-Bus daemon) were reparented to this
        # process, a subreaper for the daemonized mount: reap those that are
        # zombies (the mount's daemon, still running, is not one of them).
        for pid in seen:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
        for d in os.listdir("/proc"):
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if fields[0] == "Z" and int(fields[1]) == os.getpid():
                    os.waitpid(int(d), os.WNOHANG)
            except (OSError, ValueError, IndexError):
                pass
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        super().tearDown()

    def signal_marked(self, sig, seen):
        """Sends `sig` to every process of the session still there, adding
        them to `seen`."""
        for pid in self.marked_pids():
            seen.add(pid)
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def marked_pids(self):
        """Processes this test started, by the marker in their environment."""
        pids = []
        for d in os.listdir("/proc"):
            if not d.isdigit() or int(d) == os.getpid():
                continue
            try:
                with open(f"/proc/{d}/environ", "rb") as f:
                    if self.marker.encode() in f.read().split(b"\0"):
                        pids.append(int(d))
            except OSError:
                pass
        return pids

    def spawn(self, *cmd, **kw):
        p = subprocess.Popen(list(cmd), env=self.env, start_new_session=True, **kw)
        self.procs.append(p)
        return p

    def assertKioUsedTheHomeTrash(self, name, data, store_before):
        """The file left files/ and the catalog; the store did not grow;
        the bytes were copied into the home trash (KIO and Solid, above)."""
        self.assertFalse(os.path.exists(os.path.join(self.files, name)))
        self.assertEqual(self.store_bytes(), store_before)  # not a byte into the store
        self.assertEqual(self.m.sql("SELECT count(*) FROM entry WHERE type = 'file'"), [(0,)])
        trash = self.home_trash()
        self.assertEqual(trash, {"files": [name], "info": [name + ".trashinfo"]},
                         "KIO no longer copies into the home trash: if the record is in the catalog's trash "
                         "(samplectl trash list), KIO now uses the mount's .Trash-<uid>; update "
                         "docs/DECISIONS.md 'Trash' and this test. samplectl trash list: "
                         + self.samplectl("trash", "list").stdout)
        with open(os.path.join(self.home, ".local", "share", "Trash", "files", name), "rb") as f:
            self.assertEqual(f.read(), data)
        self.assertEqual(self.samplectl("trash", "list").stdout, "")
        self.assertEqual(os.listdir(self.m.path(f".Trash-{os.getuid()}", "files")), [])


class KioClient(DesktopTestCase):
    def test_kioclient_move_to_trash(self):
        why = missing("kioclient5", "dbus-run-session")
        if why:
            self.skipTest(why)
        src = os.path.join(self.files, "raw.tif")
        write_random(src, 1024 * 1024 + 5)
        with open(src, "rb") as f:
            data = f.read()
        before = self.store_bytes()
        env = dict(self.env, QT_QPA_PLATFORM="offscreen")
        r = subprocess.run([TOOLS["dbus-run-session"], "--", TOOLS["kioclient5"], "--noninteractive",
                            "move", src, "trash:/"], env=env, capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        # Why (KIO's trash worker, debug log): the mount's trash passed the
        # checks (else there is no Solid query), Solid knows no such device.
        self.assertRegex(r.stderr, r"Queried Solid with .*StorageAccess.filePath == '%s'.* got 0 devices"
                         % self.m.mnt, r.stderr[-3000:])
        self.assertKioUsedTheHomeTrash("raw.tif", data, before)


class Dolphin(DesktopTestCase):
    def start_x(self):
        """Xvfb on a free display; returns ':N'."""
        rfd, wfd = os.pipe()
        self.spawn(TOOLS["Xvfb"], "-displayfd", str(wfd), "-screen", "0", "1280x800x24", "-nolisten", "tcp",
                   pass_fds=(wfd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(wfd)
        with os.fdopen(rfd) as f:
            number = f.readline().strip()
        if not number:
            self.fail("Xvfb did not start")
        return ":" + number

    def test_dolphin_delete_key(self):
        why = missing("dolphin", "Xvfb", "xdotool", "dbus-run-session")
        if why:
            self.skipTest(why)
        src = os.path.join(self.files, "raw.tif")
        write_random(src, 2 * 1024 * 1024 + 3)
        with open(src, "rb") as f:
            data = f.read()
        before = self.store_bytes()
        self.env["DISPLAY"] = self.start_x()
        self.env["QT_QPA_PLATFORM"] = "xcb"
        log = open(os.path.join(self.desk, "dolphin.log"), "w")
        self.addCleanup(log.close)
        self.spawn(TOOLS["dbus-run-session"], "--", TOOLS["dolphin"], "--new-window", "--select", src,
                   stdout=log, stderr=subprocess.STDOUT)
        r = subprocess.run([TOOLS["xdotool"], "search", "--sync", "--onlyvisible", "--class", "dolphin"],
                           env=self.env, capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        window = r.stdout.split()[0]
        # Delete (Dolphin: "Move to Trash") on the selected file; again if
        # the selection was not there yet when the key came.
        for attempt in range(5):
            time.sleep(2)
            subprocess.run([TOOLS["xdotool"], "windowfocus", "--sync", window], env=self.env, timeout=30)
            subprocess.run([TOOLS["xdotool"], "key", "Delete"], env=self.env, timeout=30, check=True)
            deadline = time.time() + 20
            while os.path.exists(src) and time.time() < deadline:
                time.sleep(0.2)
            if not os.path.exists(src):
                break
        with open(log.name) as f:
            dolphin_log = f.read()[-3000:]
        self.assertFalse(os.path.exists(src), "Dolphin did not delete the file:\n" + dolphin_log)
        # The source goes after the copy is complete; the .trashinfo first.
        deadline = time.time() + 30
        while self.home_trash()["files"] == [] and time.time() < deadline:
            time.sleep(0.2)
        self.assertKioUsedTheHomeTrash("raw.tif", data, before)
        self.assertIn("got 0 devices", dolphin_log)


if __name__ == "__main__":
    unittest.main()
