//go:build !linux

package state

import (
	"errors"
	"os"
)

// syncFSAvailable is false: without syncfs, materialised files are made
// durable one by one, as direct saves are.
const syncFSAvailable = false

func syncFS(*os.File) error { return errors.ErrUnsupported }
