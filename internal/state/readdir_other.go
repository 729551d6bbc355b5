//go:build !linux

package state

import (
	"errors"
	"io/fs"
	"os"
)

// readDirNames returns the names in dir, nil if it does not exist.
func readDirNames(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	return names, err
}
