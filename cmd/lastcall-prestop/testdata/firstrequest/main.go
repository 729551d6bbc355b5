// Command firstrequest is the baseline of the start-latency test: the least
// a static Go binary can do before its first HTTP request (one POST).
package main

import (
	"net/http"
	"os"
)

func main() {
	resp, err := http.Post(os.Args[1], "", http.NoBody)
	if err != nil {
		os.Exit(1)
	}
	resp.Body.Close()
}
