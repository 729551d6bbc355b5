package prestop

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/lastcall-dev/lastcall/internal/prestop/procnet"
)

// waitPoll is how often the wait step reads the kernel's TCP tables: often
// enough to lose little of a tight budget, rarely enough to cost nothing.
const waitPoll = 50 * time.Millisecond

// waitIdle polls the TCP tables until no ESTABLISHED connection to c.Ports
// remains or ctx ends.
func (h *Hook) waitIdle(ctx context.Context) (string, error) {
	ports := portList(h.cfg.Ports)
	for {
		n, err := procnet.CountEstablished(h.cfg.ProcNetTCP, h.cfg.Ports)
		if err != nil {
			return "", fmt.Errorf("read TCP tables: %w", err)
		}
		if n == 0 {
			return "no established connections on " + ports, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("%d connection(s) still established on %s: %w", n, ports, ctx.Err())
		case <-h.clock.After(waitPoll):
		}
	}
}

func portList(ports []int) string {
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = ":" + strconv.Itoa(p)
	}
	return strings.Join(s, ",")
}
