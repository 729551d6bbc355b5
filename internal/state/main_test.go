//go:build !integration

package state

import (
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	runCrashChild()
	os.Exit(m.Run())
}
