//go:build unix

package outbox

import (
	"os"
	"syscall"
)

// unlockFile releases bbolt's flock on f explicitly: closing f alone does
// not when a memory mapping of the file is left behind.
func unlockFile(f *os.File) { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }
