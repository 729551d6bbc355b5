package state

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lastcall-dev/lastcall/internal/devcluster"
)

const uploadSize = 1 << 30

// stateServerProcess builds testdata/stateserver and runs it over a fresh
// file:// store: the state service alone in its process, so that its
// memory can be read from /proc. It returns the base URL and the pid.
func stateServerProcess(b *testing.B) (string, int) {
	b.Helper()
	dir := b.TempDir()
	bin := filepath.Join(dir, "stateserver")
	if err := devcluster.GoBuild(context.Background(), "", bin, "./testdata/stateserver"); err != nil {
		b.Fatal(err)
	}
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(adminToken), 0o600); err != nil {
		b.Fatal(err)
	}
	args := []string{"-dir", filepath.Join(dir, "state"), "-token-file", tokenFile}
	if p := os.Getenv("STATESERVER_CPUPROFILE"); p != "" {
		args = append(args, "-cpuprofile", p) // to see where the server's CPU goes
	}
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	})
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		b.Fatalf("stateserver did not start: %v", err)
	}
	return "http://" + strings.TrimSpace(addr), cmd.Process.Pid
}

// procStatusKiB reads a field (VmRSS, VmHWM) of /proc/<pid>/status in KiB.
func procStatusKiB(b *testing.B, pid int, field string) float64 {
	b.Helper()
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb
		}
	}
	b.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// procCPU is the CPU time (user and system) process pid has used, from
// /proc/<pid>/stat in clock ticks of 10 ms: unlike wall time, the work the
// server does, whatever its neighbours' load.
func procCPU(b *testing.B, pid int) time.Duration {
	b.Helper()
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command's closing parenthesis; utime and stime are
	// the 14th and 15th fields of the line.
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("parse /proc/%d/stat: %v %v", pid, err1, err2)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// dd writes 1 GiB with `dd bs=1M conv=fsync`, the disk's own pace for a
// streamed, fsync'd file, and returns how long it took.
func dd(b *testing.B, dir string) time.Duration {
	b.Helper()
	out := filepath.Join(dir, "dd.out")
	start := time.Now()
	cmd := exec.Command("dd", "if=/dev/zero", "of="+out, "bs=1M", "count="+strconv.Itoa(uploadSize>>20), "conv=fsync")
	if msg, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("dd: %v\n%s", err, msg)
	}
	d := time.Since(start)
	if err := os.Remove(out); err != nil {
		b.Fatal(err)
	}
	return d
}

// BenchmarkUpload1GiB compares a 1 GiB PUT (loopback HTTP into a state
// server process with a file:// store, SHA-256 computed and the object
// fsync'd before the 201) with dd writing and fsyncing 1 GiB on the same
// disk, and reads the server's RSS before and at its peak (VmHWM).
//
//	go test -run XXX -bench Upload1GiB -benchtime 5x ./internal/state/
func BenchmarkUpload1GiB(b *testing.B) {
	base, pid := stateServerProcess(b)
	ddDir := b.TempDir()
	client := &http.Client{}
	rssBefore := procStatusKiB(b, pid, "VmRSS") / 1024
	var dds, apis, ratios, cpus []float64
	for b.Loop() {
		ddTime := dd(b, ddDir)
		cpu := procCPU(b, pid)
		start := time.Now()
		req, err := http.NewRequest(http.MethodPut, base+"/v1/state/team-a/big", newPatternReader(uploadSize))
		if err != nil {
			b.Fatal(err)
		}
		req.ContentLength = uploadSize
		req.Header.Set("Authorization", "Bearer "+adminToken)
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			b.Fatalf("PUT: %s", resp.Status)
		}
		apiTime := time.Since(start)
		cpus = append(cpus, float64(procCPU(b, pid)-cpu)/float64(time.Millisecond))
		// Only the newest version matters here; keep the disk free.
		del, _ := http.NewRequest(http.MethodDelete, base+"/v1/state/team-a/big", nil)
		del.Header.Set("Authorization", "Bearer "+adminToken)
		if resp, err := client.Do(del); err != nil || resp.StatusCode != http.StatusNoContent {
			b.Fatalf("DELETE: %v %v", resp, err)
		}
		mbs := func(d time.Duration) float64 { return uploadSize / d.Seconds() / 1e6 }
		dds, apis = append(dds, mbs(ddTime)), append(apis, mbs(apiTime))
		ratios = append(ratios, 100*ddTime.Seconds()/apiTime.Seconds())
		b.Logf("round %d: dd %s, upload %s", len(dds), ddTime.Round(time.Millisecond), apiTime.Round(time.Millisecond))
	}
	b.ReportMetric(median(dds), "dd-MB/s")
	b.ReportMetric(median(apis), "upload-MB/s")
	b.ReportMetric(median(ratios), "upload/dd-%")
	b.ReportMetric(median(cpus), "server-cpu-ms/GiB")
	b.ReportMetric(rssBefore, "server-rss-before-MiB")
	b.ReportMetric(procStatusKiB(b, pid, "VmHWM")/1024, "server-rss-peak-MiB")
}
