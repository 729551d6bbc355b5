package lint

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// LoadPath reads the manifests of a file, of stdin when p is "-", or of
// every *.yaml, *.yml and *.json file under a directory.
func LoadPath(p string, stdin io.Reader) ([]Object, error) {
	if p == "-" {
		return Load("<stdin>", stdin)
	}
	info, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		return loadFile(p)
	}
	var out []Object
	err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !isManifest(path) {
			return nil
		}
		got, err := loadFile(path)
		out = append(out, got...)
		return err
	})
	return out, err
}

func isManifest(p string) bool {
	for _, ext := range []string{".yaml", ".yml", ".json"} {
		if strings.HasSuffix(p, ext) {
			return true
		}
	}
	return false
}

func loadFile(p string) ([]Object, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	objs, err := Load(p, f)
	var ie *InputError
	if errors.As(err, &ie) {
		return nil, fmt.Errorf("cannot read manifest %w", err)
	}
	return objs, err
}
