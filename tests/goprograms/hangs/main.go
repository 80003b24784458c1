// hangs: a pprof endpoint that stops answering, to check that gopark's collection is
// bounded by its timeouts.
//
//	-hang goroutine,heap      these profiles never answer (the handler waits until the
//	                          client gives up)
//	-trickle heap             these send their headers, then the profile one byte every
//	                          200 ms
//	-silent-addr-file FILE    also listen on a second port that accepts connections and
//	                          never reads or writes; its HOST:PORT is written to FILE
package main

import (
	"bytes"
	"flag"
	"net"
	"net/http"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"goparkfixtures/harness"
)

var (
	hang       = flag.String("hang", "", "comma-separated profile names that never answer")
	trickle    = flag.String("trickle", "", "comma-separated profile names that answer one byte at a time")
	silentFile = flag.String("silent-addr-file", "", "write the address of a silent listener here")
)

func names(list string) []string {
	if list == "" {
		return nil
	}
	return strings.Split(list, ",")
}

func neverAnswer(w http.ResponseWriter, r *http.Request) {
	<-r.Context().Done()
}

// answerSlowly sends the real profile one byte every 200 ms, like a congested link.
func answerSlowly(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		debug, _ := strconv.Atoi(r.FormValue("debug"))
		var body bytes.Buffer
		if err := pprof.Lookup(name).WriteTo(&body, debug); err != nil {
			panic(err)
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.WriteHeader(http.StatusOK)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for _, b := range body.Bytes() {
			if _, err := w.Write([]byte{b}); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-tick.C:
			}
		}
	}
}

// listenSilently accepts connections and holds them open without a byte either way.
func listenSilently(file string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	if err := os.WriteFile(file, []byte(ln.Addr().String()), 0o644); err != nil {
		panic(err)
	}
	var held []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
}

func main() {
	harness.Run(harness.Program{Setup: func(cfg harness.Config) {
		for _, name := range names(*hang) {
			cfg.ServeMux.HandleFunc("/debug/pprof/"+name, neverAnswer)
		}
		for _, name := range names(*trickle) {
			cfg.ServeMux.HandleFunc("/debug/pprof/"+name, answerSlowly(name))
		}
		if *silentFile != "" {
			listenSilently(*silentFile)
		}
	}, Request: func(int) {}})
}
