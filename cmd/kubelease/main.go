// Command kubelease runs a command under a Kubernetes Lease, so that at most
// one process at a time (or at most N, with --slots) runs it, and shows who
// holds a Lease. See "kubelease --help".
package main

import "os"

func main() {
	os.Exit(execute(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
