// hangs: a pprof endpoint that stops answering, to check that gopark's collection is
// bounded by its timeouts.
//
//	-hang goroutine,heap      these profiles never answer (the handler waits until the
//	                          client gives up)
//	-trickle heap             these send their headers, then one byte every 200 ms forever
//	-silent-addr-file FILE    also listen on a second port that accepts connections and
//	                          never reads or writes; its HOST:PORT is written to FILE
package main

import (
	"flag"
	"net"
	"net/http"
	"os"
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

func answerSlowly(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(http.StatusOK)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := w.Write([]byte{'x'}); err != nil {
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
			cfg.ServeMux.HandleFunc("/debug/pprof/"+name, answerSlowly)
		}
		if *silentFile != "" {
			listenSilently(*silentFile)
		}
	}, Request: func(int) {}})
}
