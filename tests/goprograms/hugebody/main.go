// hugebody: a pprof endpoint whose named profiles answer with an endless body, as fast
// as the client reads, to check that gopark caps response sizes without holding them in
// memory.
//
//	-endless heap,goroutine   these profiles stream zeros until the client hangs up
package main

import (
	"flag"
	"net/http"
	"strings"

	"goparkfixtures/harness"
)

var endless = flag.String("endless", "heap", "comma-separated profile names with an endless body")

func stream(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/octet-stream")
	chunk := make([]byte, 64<<10)
	for {
		if _, err := w.Write(chunk); err != nil {
			return
		}
	}
}

func main() {
	harness.Run(harness.Program{Setup: func(cfg harness.Config) {
		for _, name := range strings.Split(*endless, ",") {
			cfg.ServeMux.HandleFunc("/debug/pprof/"+name, stream)
		}
	}, Request: func(int) {}})
}
