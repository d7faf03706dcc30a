package main

import (
	"os"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// TestREADMENamesEveryFlag keeps the README's "From a shell" section in step
// with the commands: every flag of every command, and every command, is
// named there.
func TestREADMENamesEveryFlag(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	root := newRootCommand(strings.NewReader(""), &syncBuffer{}, &syncBuffer{})
	for _, cmd := range root.Commands() {
		if cmd.Hidden || cmd.Name() == "help" {
			continue
		}
		if !strings.Contains(readme, "kubelease "+cmd.Name()) {
			t.Errorf("README.md does not show the command %q", "kubelease "+cmd.Name())
		}
		cmd.Flags().VisitAll(func(f *pflag.Flag) {
			if f.Name == "help" || cmd.Name() == "completion" {
				return
			}
			if !strings.Contains(readme, "--"+f.Name) {
				t.Errorf("README.md does not name the flag --%s of %q", f.Name, cmd.Name())
			}
		})
	}
	root.PersistentFlags().VisitAll(func(f *pflag.Flag) {
		if !strings.Contains(readme, "--"+f.Name) {
			t.Errorf("README.md does not name the global flag --%s", f.Name)
		}
	})
}
