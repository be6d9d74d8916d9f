package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// ImportStats counts what one ImportDir pass did with the files it took.
type ImportStats struct {
	// Stored and Duplicates were loaded (or were loaded before) and left
	// the drop folder.
	Stored, Duplicates int
	// Rejected files were moved to the reject folder (Config.RejectDir).
	Rejected int
	// Failed files stay in the drop folder for the next pass: the store or
	// the archive failed.
	Failed int
	// Waiting files changed less than Config.Settle ago: perhaps still
	// being written.
	Waiting int
}

// ImportDir loads every *.json.gz file of a drop folder (a probe's rsync
// or SFTP target, the seed's /sftp/transfer-nnn) as the Handler loads an
// upload, with the same checks and de-duplication, and takes each out of
// the folder: loaded and duplicate files are removed (the archive has the
// original), refused ones moved to Config.RejectDir. vp, when not empty,
// is the only vantage point whose results the folder may hold; a file of
// another is refused (Forbidden), as a token is.
//
// Dot files (rsync's temporary files) and files changed less than
// Config.Settle ago are left for a later pass; so are files the store or
// the archive failed on. The error reports the first such failure, or a
// folder that cannot be read.
func (in *Ingester) ImportDir(ctx context.Context, dir, vp string) (ImportStats, error) {
	var st ImportStats
	if in.cfg.RejectDir == "" {
		return st, errors.New("rssac ingest: import: no reject directory")
	}
	mu, _ := in.importMu.LoadOrStore(filepath.Clean(dir), &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return st, fmt.Errorf("rssac ingest: import %s: %w", dir, err)
	}
	var firstErr error
	now := in.now()
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".json.gz") || !e.Type().IsRegular() {
			continue
		}
		if err := ctx.Err(); err != nil {
			return st, err
		}
		path := filepath.Join(dir, name)
		fi, err := e.Info()
		if err != nil {
			continue // gone since the listing
		}
		if now.Sub(fi.ModTime()) < in.cfg.Settle {
			st.Waiting++
			continue
		}
		o, err := in.importFile(ctx, path, fi.Size(), vp)
		in.m.count(SourceDir, o)
		switch o {
		case Stored:
			st.Stored++
		case Duplicate:
			st.Duplicates++
		case StoreError, ArchiveError:
			st.Failed++
			in.log.Warn("rssac ingest: import failed; the file stays for the next pass", "file", path, "outcome", o, "err", err)
			if firstErr == nil {
				firstErr = fmt.Errorf("rssac ingest: import %s: %w", path, err)
			}
			continue
		default:
			st.Rejected++
			in.log.Warn("rssac ingest: import refused a file", "file", path, "outcome", o, "err", err)
			if err := in.reject(path); err != nil {
				in.log.Error("rssac ingest: could not move a refused file out of the drop folder", "file", path, "err", err)
				if firstErr == nil {
					firstErr = fmt.Errorf("rssac ingest: import %s: reject: %w", path, err)
				}
			}
			continue
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			in.log.Error("rssac ingest: could not remove a loaded file from the drop folder", "file", path, "err", err)
			if firstErr == nil {
				firstErr = fmt.Errorf("rssac ingest: import %s: %w", path, err)
			}
		}
	}
	return st, firstErr
}

// importFile loads one drop-folder file.
func (in *Ingester) importFile(ctx context.Context, path string, size int64, vp string) (Outcome, error) {
	if size > in.cfg.MaxBytes {
		return TooLarge, fmt.Errorf("%d bytes, over %d", size, in.cfg.MaxBytes)
	}
	f, err := os.Open(path)
	if err != nil {
		return StoreError, err
	}
	data, err := io.ReadAll(io.LimitReader(f, in.cfg.MaxBytes+1))
	f.Close()
	if err != nil {
		return StoreError, err
	}
	if int64(len(data)) > in.cfg.MaxBytes {
		return TooLarge, fmt.Errorf("over %d bytes", in.cfg.MaxBytes)
	}
	run, o, err := decode(data)
	if err != nil {
		return o, err
	}
	if !ValidVP(run.VP) {
		return BadDocument, fmt.Errorf("vantage point %q: %s", run.VP, vpRule)
	}
	if vp != "" && run.VP != vp {
		return Forbidden, fmt.Errorf("the file is vantage point %q's, in the drop folder of %q", run.VP, vp)
	}
	_, o, err = in.load(ctx, run, data)
	return o, err
}

// reject moves a refused file to the reject folder, under a name of its
// own when one of that name is there already.
func (in *Ingester) reject(path string) error {
	if err := os.MkdirAll(in.cfg.RejectDir, 0o750); err != nil {
		return err
	}
	base := filepath.Base(path)
	dst := filepath.Join(in.cfg.RejectDir, base)
	for i := 1; ; i++ {
		if _, err := os.Lstat(dst); errors.Is(err, os.ErrNotExist) {
			break
		}
		if i > 1000 {
			return fmt.Errorf("%s: too many files of that name in %s", base, in.cfg.RejectDir)
		}
		dst = filepath.Join(in.cfg.RejectDir, base+"."+strconv.Itoa(i))
	}
	return moveFile(path, dst)
}
