//go:build race

package main

// raceEnabled: the tests run with -race, so the e2e suite builds medic
// with -race too.
const raceEnabled = true
