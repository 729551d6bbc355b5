// Package procnet reads the kernel's TCP socket tables (/proc/net/tcp and
// /proc/net/tcp6) so the preStop hook can tell when an app's listening ports
// have no connections left. It is the OS-facing part, kept apart so the hook
// logic is tested with files written by the test.
package procnet

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// State is a TCP state as the kernel numbers it (include/net/tcp_states.h).
type State uint8

// The states a caller of this package cares about; the others are numbered
// as the kernel numbers them and print as a number.
const (
	Established State = 0x01
	TimeWait    State = 0x06
	CloseWait   State = 0x08
	Listen      State = 0x0A
)

// DefaultPaths are the tables of the current network namespace, which all
// containers of a pod share.
var DefaultPaths = []string{"/proc/net/tcp", "/proc/net/tcp6"}

// Conn is one row of a table.
type Conn struct {
	Local  netip.AddrPort
	Remote netip.AddrPort
	State  State
}

// Parse reads a table in the kernel's format: a header line, then one socket
// per line as "sl: LOCAL REMOTE ST ...", addresses in hex as the kernel keeps
// them in memory (so in native byte order per 32-bit word), ports in hex.
func Parse(r io.Reader) ([]Conn, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	var conns []Conn
	for n := 1; sc.Scan(); n++ {
		if n == 1 {
			continue // header
		}
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		c, err := parseLine(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		conns = append(conns, c)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return conns, nil
}

func parseLine(line string) (Conn, error) {
	f := strings.Fields(line)
	if len(f) < 4 || !strings.HasSuffix(f[0], ":") {
		return Conn{}, errors.New("want \"sl: local remote st ...\"")
	}
	local, err := parseAddrPort(f[1])
	if err != nil {
		return Conn{}, fmt.Errorf("local address %q: %w", f[1], err)
	}
	remote, err := parseAddrPort(f[2])
	if err != nil {
		return Conn{}, fmt.Errorf("remote address %q: %w", f[2], err)
	}
	if len(f[3]) != 2 {
		return Conn{}, fmt.Errorf("state %q: want two hex digits", f[3])
	}
	st, err := strconv.ParseUint(f[3], 16, 8)
	if err != nil {
		return Conn{}, fmt.Errorf("state %q: %w", f[3], err)
	}
	return Conn{Local: local, Remote: remote, State: State(st)}, nil
}

// parseAddrPort decodes "0100007F:1F90" (IPv4) or 32 hex digits and a port
// (IPv6). The kernel prints each 32-bit word of the address as a native
// integer, so the bytes of each word come out reversed on little-endian CPUs.
func parseAddrPort(s string) (netip.AddrPort, error) {
	host, port, ok := strings.Cut(s, ":")
	if !ok || len(port) != 4 || (len(host) != 8 && len(host) != 32) {
		return netip.AddrPort{}, errors.New("want 8 or 32 hex digits, a colon and 4 hex digits")
	}
	p, err := strconv.ParseUint(port, 16, 16)
	if err != nil {
		return netip.AddrPort{}, err
	}
	raw, err := hex.DecodeString(host)
	if err != nil {
		return netip.AddrPort{}, err
	}
	for i := 0; i < len(raw); i += 4 {
		binary.NativeEndian.PutUint32(raw[i:], binary.BigEndian.Uint32(raw[i:]))
	}
	addr, _ := netip.AddrFromSlice(raw) // 4 or 16 bytes: always valid
	return netip.AddrPortFrom(addr, uint16(p)), nil
}

// Format writes conns as a table Parse reads back; tests use it to write
// fixtures.
func Format(w io.Writer, conns []Conn) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintln(bw, "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode")
	for i, c := range conns {
		fmt.Fprintf(bw, "%4d: %s %s %02X 00000000:00000000 00:00000000 00000000     0        0 0 1\n",
			i, formatAddrPort(c.Local), formatAddrPort(c.Remote), uint8(c.State))
	}
	return bw.Flush()
}

func formatAddrPort(ap netip.AddrPort) string {
	raw := ap.Addr().AsSlice()
	if raw == nil {
		raw = make([]byte, 4) // the zero AddrPort prints as 0.0.0.0:0
	}
	var b strings.Builder
	for i := 0; i < len(raw); i += 4 {
		fmt.Fprintf(&b, "%08X", binary.NativeEndian.Uint32(raw[i:]))
	}
	fmt.Fprintf(&b, ":%04X", ap.Port())
	return b.String()
}

// CountEstablished counts the ESTABLISHED connections whose local port is one
// of ports (inbound connections to those listeners) in the tables at paths. A
// missing table (tcp6 on a host without IPv6) counts as empty.
func CountEstablished(paths []string, ports []int) (int, error) {
	want := make(map[uint16]bool, len(ports))
	for _, p := range ports {
		want[uint16(p)] = true
	}
	n := 0
	for _, path := range paths {
		f, err := os.Open(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, err
		}
		conns, err := Parse(f)
		f.Close()
		if err != nil {
			return 0, fmt.Errorf("parse %s: %w", path, err)
		}
		for _, c := range conns {
			if c.State == Established && want[c.Local.Port()] {
				n++
			}
		}
	}
	return n, nil
}
