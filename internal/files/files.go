// Package files keeps the bytes of the Batch API's files: on local disk by
// default (Disk), in an S3-compatible bucket when configured (package s3).
// Each backend runs the one conformance suite in filestest.
package files

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// ErrNotFound is a name that holds nothing.
var ErrNotFound = errors.New("files: not found")

// Storage keeps files by name (a file's id).
type Storage interface {
	// Put stores size bytes from r under name, replacing what was there;
	// the file is whole or absent, never partial.
	Put(ctx context.Context, name string, r io.Reader, size int64) error
	// Open reads a stored file; ErrNotFound when there is none.
	Open(ctx context.Context, name string) (io.ReadCloser, error)
	// Delete removes a file; deleting nothing is no error.
	Delete(ctx context.Context, name string) error
}

// CheckName refuses names that could leave the storage's folder or prefix.
func CheckName(name string) error {
	if name == "" || strings.ContainsAny(name, `/\`) || name == "." || name == ".." || strings.HasPrefix(name, ".") {
		return fmt.Errorf("files: bad name %q", name)
	}
	return nil
}

// Disk keeps files in a folder.
type Disk struct{ Dir string }

// NewDisk makes the folder (owner-only: the files hold prompts).
func NewDisk(dir string) (*Disk, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("files: %w", err)
	}
	return &Disk{Dir: dir}, nil
}

// Put writes to a temporary file and renames it into place once synced,
// so a crash leaves the old file or the new, never half of one.
func (d *Disk) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	if err := CheckName(name); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(d.Dir, ".put-*")
	if err != nil {
		return fmt.Errorf("files: %w", err)
	}
	defer os.Remove(tmp.Name()) // after the rename, a no-op
	n, err := io.Copy(tmp, r)
	if err == nil && n != size {
		err = fmt.Errorf("files: %s: wrote %d bytes, want %d", name, n, size)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), filepath.Join(d.Dir, name)); err != nil {
		return fmt.Errorf("files: %w", err)
	}
	return nil
}

// Open opens a stored file.
func (d *Disk) Open(_ context.Context, name string) (io.ReadCloser, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(d.Dir, name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotFound
	}
	return f, err
}

// Delete removes a stored file.
func (d *Disk) Delete(_ context.Context, name string) error {
	if err := CheckName(name); err != nil {
		return err
	}
	err := os.Remove(filepath.Join(d.Dir, name))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}
