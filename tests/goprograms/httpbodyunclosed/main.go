// httpbodyunclosed: a client checks the status code of each response and never
// closes the body, so every request keeps a connection and its transport
// goroutines (readLoop, writeLoop) alive.
package main

import (
	"fmt"
	"net"
	"net/http"

	"goparkfixtures/harness"
)

var upstream string

func checkHealth(i int) {
	resp, err := http.Get(fmt.Sprintf("%s/health?i=%d", upstream, i))
	if err != nil {
		return
	}
	if resp.StatusCode != http.StatusOK {
		fmt.Println("unhealthy")
	}
	// missing: resp.Body.Close()
}

func main() {
	harness.Run(harness.Program{
		Setup: func(cfg harness.Config) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				panic(err)
			}
			mux := http.NewServeMux()
			mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprintln(w, "ok")
			})
			go func() { _ = http.Serve(ln, mux) }()
			upstream = "http://" + ln.Addr().String()
		},
		Request: checkHealth,
	})
}
