// Command panicparse-bench parses goroutine dumps with panicparse
// (github.com/maruel/panicparse/v2) and buckets them like `pp` does, as the peer that
// benchmarks/dump_bench.py times gopark against. Paths are not guessed and sources not
// read, so it measures parsing and bucketing only.
//
//	go run . [-parse-only] DUMP
//
// Its bucketing compares every bucket with every other: on dumps where many goroutines
// differ only in their creator's id it grows quadratically, so -parse-only times the
// parsing alone.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/maruel/panicparse/v2/stack"
)

func main() {
	parseOnly := flag.Bool("parse-only", false, "parse without bucketing")
	flag.Parse()
	data, err := os.ReadFile(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	opts := &stack.Opts{}
	in := io.Reader(bytes.NewReader(data))
	goroutines, buckets := 0, 0
	for {
		snap, suffix, err := stack.ScanSnapshot(in, io.Discard, opts)
		if snap != nil {
			goroutines += len(snap.Goroutines)
			if !*parseOnly {
				buckets += len(snap.Aggregate(stack.AnyPointer).Buckets)
			}
		}
		if err != nil && err != io.EOF {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		if err == io.EOF || snap == nil {
			break
		}
		in = io.MultiReader(bytes.NewReader(suffix), in)
	}
	fmt.Printf("%d goroutines in %d buckets\n", goroutines, buckets)
}
