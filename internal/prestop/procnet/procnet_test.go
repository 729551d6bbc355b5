package procnet

import (
	"bytes"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Lines as a little-endian Linux kernel prints them.
const sampleTCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 12345 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000  1000        0 12346 1 0000000000000000 20 4 30 10 -1
   2: 020200C0:B3A2 507100CB:01BB 06 00000000:00000000 03:00001318 00000000     0        0 0 3 00000000c3f850ce
`

const sampleTCP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:1F90 00000000000000000000000001000000:C350 01 00000000:00000000 00:00000000 00000000  1000        0 1 1 0000000000000000 20 4 0 10 -1
   1: 0000000000000000FFFF00000100007F:1F91 0000000000000000FFFF00000100007F:C351 01 00000000:00000000 00:00000000 00000000  1000        0 2 1 0000000000000000 20 4 0 10 -1
`

func TestParseDecodesAddressesPortsAndStates(t *testing.T) {
	got, err := Parse(strings.NewReader(sampleTCP + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []Conn{
		{netip.MustParseAddrPort("127.0.0.1:8080"), netip.MustParseAddrPort("0.0.0.0:0"), Listen},
		{netip.MustParseAddrPort("127.0.0.1:8080"), netip.MustParseAddrPort("127.0.0.1:54321"), Established},
		{netip.MustParseAddrPort("192.0.2.2:45986"), netip.MustParseAddrPort("203.0.113.80:443"), TimeWait},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %v\nwant %v", got, want)
	}
	got6, err := Parse(strings.NewReader(sampleTCP6))
	if err != nil {
		t.Fatal(err)
	}
	want6 := []Conn{
		{netip.MustParseAddrPort("[::1]:8080"), netip.MustParseAddrPort("[::1]:50000"), Established},
		{netip.MustParseAddrPort("[::ffff:127.0.0.1]:8081"), netip.MustParseAddrPort("[::ffff:127.0.0.1]:50001"), Established},
	}
	if !reflect.DeepEqual(got6, want6) {
		t.Fatalf("got  %v\nwant %v", got6, want6)
	}
}

func TestParseRejectsMalformedLines(t *testing.T) {
	for name, line := range map[string]string{
		"too few fields": "0: 0100007F:1F90 00000000:0000",
		"no sl colon":    "0 0100007F:1F90 00000000:0000 0A",
		"short address":  "0: 01007F:1F90 00000000:0000 0A",
		"bad hex":        "0: 0100007G:1F90 00000000:0000 0A",
		"long port":      "0: 0100007F:01F90 00000000:0000 0A",
		"bad state":      "0: 0100007F:1F90 00000000:0000 ZZ",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Parse(strings.NewReader("header\n" + line + "\n")); err == nil {
				t.Fatalf("Parse accepted %q", line)
			}
		})
	}
}

func TestCountEstablishedCountsOnlyInboundToThePorts(t *testing.T) {
	dir := t.TempDir()
	v4 := filepath.Join(dir, "tcp")
	v6 := filepath.Join(dir, "tcp6")
	if err := os.WriteFile(v4, []byte(sampleTCP), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(v6, []byte(sampleTCP6), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ports []int
		paths []string
		want  int
	}{
		{[]int{8080}, []string{v4, v6}, 2},
		{[]int{8080, 8081}, []string{v4, v6}, 3},
		{[]int{443}, []string{v4, v6}, 0},                             // 443 is the remote port of a TIME_WAIT row
		{[]int{8080}, []string{v4, filepath.Join(dir, "missing")}, 1}, // no tcp6: empty
	} {
		got, err := CountEstablished(tc.paths, tc.ports)
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("CountEstablished(%v) = %d, want %d", tc.ports, got, tc.want)
		}
	}
}

// The kernel's own table sees a loopback connection to a real listener, and
// stops seeing it once closed.
func TestCountEstablishedSeesARealConnection(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	client, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server := <-accepted
	waitCount(t, port, 1)
	client.Close()
	server.Close()
	waitCount(t, port, 0)
}

func waitCount(t *testing.T, port, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := CountEstablished(DefaultPaths, []int{port})
		if err != nil {
			t.Fatal(err)
		}
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d established connections on :%d, want %d", n, port, want)
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
}

// Whatever Parse accepts, Format writes back so that Parse reads the same.
func FuzzParse(f *testing.F) {
	f.Add([]byte(sampleTCP))
	f.Add([]byte(sampleTCP6))
	f.Add([]byte("h\n0: 00000000:0000 00000000:0000 01\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		conns, err := Parse(bytes.NewReader(data))
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if err := Format(&buf, conns); err != nil {
			t.Fatal(err)
		}
		again, err := Parse(&buf)
		if err != nil {
			t.Fatalf("Parse(Format(%v)): %v\n%s", conns, err, buf.String())
		}
		if len(conns) != len(again) {
			t.Fatalf("round trip: %d conns, then %d", len(conns), len(again))
		}
		for i := range conns {
			if conns[i] != again[i] {
				t.Fatalf("round trip: %v became %v", conns[i], again[i])
			}
		}
	})
}
