package lease_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDesignDocNamesEveryFile keeps docs/design.md's layout true: every
// source file of the package is named there (review: the shard set layer
// once was not).
func TestDesignDocNamesEveryFile(t *testing.T) {
	design, err := os.ReadFile("docs/design.md")
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		if !strings.Contains(string(design), "`"+f+"`") {
			t.Errorf("docs/design.md does not name %s: add it to the layout table (§3)", f)
		}
	}
}
