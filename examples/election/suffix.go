package main

import (
	"crypto/rand"
	"encoding/hex"
)

// randomSuffix returns 6 random hex digits, so that every process start
// gets an Owner of its own even when it reuses a pod or host name.
func randomSuffix() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
