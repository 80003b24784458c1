// idlehttpserver: an HTTP server with keep-alive clients that are idle between
// requests. Its goroutines (server conns, client transport loops) are the idle
// shapes every Go service has; nothing leaks.
package main

import (
	"fmt"
	"io"
	"net"
	"net/http"

	"goparkfixtures/harness"
)

var (
	upstream string
	client   = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
)

func call(i int) {
	resp, err := client.Get(fmt.Sprintf("%s/item?i=%d", upstream, i%64))
	if err != nil {
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

func main() {
	harness.Run(harness.Program{
		Setup: func(cfg harness.Config) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				panic(err)
			}
			mux := http.NewServeMux()
			mux.HandleFunc("/item", func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprintln(w, "item", r.URL.Query().Get("i"))
			})
			go func() { _ = (&http.Server{Handler: mux}).Serve(ln) }()
			upstream = "http://" + ln.Addr().String()
			// Open a set of keep-alive connections, then leave them idle.
			done := make(chan struct{})
			for i := 0; i < 32; i++ {
				go func(i int) { call(i); done <- struct{}{} }(i)
			}
			for i := 0; i < 32; i++ {
				<-done
			}
		},
		Request: call,
	})
}
