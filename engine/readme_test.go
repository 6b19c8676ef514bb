package engine

import (
	"os"
	"strings"
	"testing"
)

// The README's embedding example is Example, word for word: it compiles
// and runs with this package's tests.
func TestReadmeExampleIsExample(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	s := string(readme)
	i := strings.Index(s, "## Embedding")
	if i < 0 {
		t.Fatal("README has no Embedding section")
	}
	s = s[i:]
	start := strings.Index(s, "```go\n")
	end := strings.Index(s[start+6:], "```")
	if start < 0 || end < 0 {
		t.Fatal("README's Embedding section has no Go block")
	}
	block := s[start+6 : start+6+end]
	if !strings.Contains(string(example), block) {
		t.Fatalf("README's embedding example is not engine/example_test.go's Example:\n%s", block)
	}
}
