//go:build go1.25

package main

import (
	"io"
	"runtime/trace"
	"time"
)

// recordFlight runs the flight recorder for d and writes its window to w.
func recordFlight(w io.Writer, d time.Duration) error {
	fr := trace.NewFlightRecorder(trace.FlightRecorderConfig{MinAge: d / 2})
	if err := fr.Start(); err != nil {
		return err
	}
	time.Sleep(d)
	_, err := fr.WriteTo(w)
	fr.Stop()
	return err
}
