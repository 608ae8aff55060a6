//go:build race

package httpserver

// raceEnabled: the race detector slows the code down too much for timing tests.
const raceEnabled = true
