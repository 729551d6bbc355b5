package logindtest

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// readDropIns returns InhibitDelayMaxSec as logind would after a reload: the
// *.conf files of dir in name order, the last [Login] value winning, base
// when none sets it. Values are whole seconds or Go durations.
func readDropIns(dir string, base time.Duration) (time.Duration, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.conf"))
	if err != nil {
		return 0, err
	}
	sort.Strings(files)
	delay := base
	for _, f := range files {
		d, ok, err := readDropIn(f)
		if err != nil {
			return 0, err
		}
		if ok {
			delay = d
		}
	}
	return delay, nil
}

func readDropIn(path string) (time.Duration, bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false, err
	}
	defer f.Close()
	var (
		section string
		delay   time.Duration
		found   bool
	)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
		case section == "Login":
			key, val, ok := strings.Cut(line, "=")
			if !ok || strings.TrimSpace(key) != "InhibitDelayMaxSec" {
				continue
			}
			d, err := parseSeconds(strings.TrimSpace(val))
			if err != nil {
				return 0, false, fmt.Errorf("%s: InhibitDelayMaxSec: %w", path, err)
			}
			delay, found = d, true
		}
	}
	return delay, found, sc.Err()
}

func parseSeconds(v string) (time.Duration, error) {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	return time.ParseDuration(v)
}
