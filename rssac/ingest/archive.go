package ingest

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
)

// The archive: ArchiveDir/yyyymm/<vp>-<yyyymmddThhmm>.json.gz, each file
// the bytes the probe sent, byte for byte. Files are written to a
// temporary name in the same folder, synced, and renamed into place, so a
// reader (rsync, a report) never sees half a file.

// tempPrefix starts the temporary files' names; ImportDir and readers of
// the archive skip dot files.
const tempPrefix = ".tmp-"

// writeTemp writes data to a new temporary file in the month's folder and
// returns its path.
func (in *Ingester) writeTemp(month, name string, data []byte) (string, error) {
	dir := filepath.Join(in.cfg.ArchiveDir, month)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", fmt.Errorf("rssac ingest: archive: %w", err)
	}
	tmp := filepath.Join(dir, tempPrefix+strconv.FormatUint(in.seq.Add(1), 10)+"-"+name)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return "", fmt.Errorf("rssac ingest: archive: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("rssac ingest: archive %s: %w", name, err)
	}
	return tmp, nil
}

// commit renames the temporary file into place and syncs the folder, so
// the name survives a crash.
func (in *Ingester) commit(tmp, month, name string) error {
	dir := filepath.Join(in.cfg.ArchiveDir, month)
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("rssac ingest: archive %s: %w", name, err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("rssac ingest: archive %s: %w", name, err)
	}
	return nil
}

// keepIfMissing commits tmp when the archive has no file of that name,
// and discards it otherwise. It reports whether it committed.
func (in *Ingester) keepIfMissing(tmp, month, name string) (bool, error) {
	_, err := os.Lstat(filepath.Join(in.cfg.ArchiveDir, month, name))
	if errors.Is(err, os.ErrNotExist) {
		return true, in.commit(tmp, month, name)
	}
	in.discard(tmp)
	return false, err
}

func (in *Ingester) discard(tmp string) { os.Remove(tmp) }

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// moveFile moves src to dst, copying when they are on different file
// systems (a drop folder under /sftp, the data directory elsewhere). dst
// must not exist; it is never overwritten.
func moveFile(src, dst string) error {
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("%s exists", dst)
	}
	if err := os.Rename(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(dst)
		return err
	}
	return os.Remove(src)
}
