//go:build unix

package outbox

import (
	"os"
	"syscall"
)

// lockPath takes an exclusive lock on a file beside the outbox, held until
// unlock or the process ends: two processes appending to one outbox would
// each drain the other's bills.
func lockPath(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}
