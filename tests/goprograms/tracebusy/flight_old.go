//go:build !go1.25

package main

import (
	"errors"
	"io"
	"time"
)

// recordFlight needs runtime/trace.FlightRecorder (Go 1.25+).
func recordFlight(io.Writer, time.Duration) error {
	return errors.New("the flight recorder needs Go 1.25 or newer")
}
