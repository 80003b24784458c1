// hugebody: a pprof endpoint whose named profiles answer with an endless body, as fast
// as the client reads, to check that gopark caps response sizes without holding them in
// memory. The body looks right at first: the binary form is a real gzip stream (stored
// blocks, so every byte read is a byte sent), the text forms start with the profile's
// header line; then it never ends.
//
//	-endless heap,goroutine   these profiles stream until the client hangs up
package main

import (
	"bytes"
	"compress/gzip"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"

	"goparkfixtures/harness"
)

var endless = flag.String("endless", "heap", "comma-separated profile names with an endless body")

func stream(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		var out io.Writer = w
		chunk := make([]byte, 64<<10)
		if d := r.FormValue("debug"); d == "" || d == "0" {
			gz, err := gzip.NewWriterLevel(w, gzip.NoCompression)
			if err != nil {
				panic(err)
			}
			out = gz
		} else {
			fmt.Fprintf(w, "%s profile: total 1\n", name)
			chunk = bytes.Repeat([]byte("#\n"), 32<<10)
		}
		for {
			if _, err := out.Write(chunk); err != nil {
				return
			}
		}
	}
}

func main() {
	harness.Run(harness.Program{Setup: func(cfg harness.Config) {
		for _, name := range strings.Split(*endless, ",") {
			cfg.ServeMux.HandleFunc("/debug/pprof/"+name, stream(name))
		}
	}, Request: func(int) {}})
}
