//go:build !race

package main

// raceEnabled: the tests run without -race; the e2e suite builds medic
// without it too.
const raceEnabled = false
