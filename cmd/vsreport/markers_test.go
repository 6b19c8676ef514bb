package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const doc = `# Title

<!-- headline:begin -->
old table
<!-- headline:end -->

text

<!-- sweep:begin -->
<!-- sweep:end -->
`

func TestReplaceSections(t *testing.T) {
	got, err := ReplaceSections(doc, map[string]string{"headline": "| a |\n| --- |\n", "sweep": "\n\nnew\n"})
	if err != nil {
		t.Fatal(err)
	}
	want := `# Title

<!-- headline:begin -->

| a |
| --- |

<!-- headline:end -->

text

<!-- sweep:begin -->

new

<!-- sweep:end -->
`
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	// Replacing again gives the same text: the blank lines do not pile up.
	again, err := ReplaceSections(got, map[string]string{"headline": "| a |\n| --- |\n", "sweep": "new"})
	if err != nil || again != want {
		t.Fatalf("second replacement: %v\n%s", err, again)
	}
}

func TestReplaceSectionsFailures(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		sections  map[string]string
		want      string
	}{
		{"missing begin", "<!-- x:end -->\n", map[string]string{"x": "a"}, `no line "<!-- x:begin -->"`},
		{"missing end", "<!-- x:begin -->\n", map[string]string{"x": "a"}, `no line "<!-- x:end -->"`},
		{"missing section", doc, map[string]string{"lab": "a"}, "section lab: no line"},
		{"twice", "<!-- x:begin -->\n<!-- x:end -->\n<!-- x:begin -->\n<!-- x:end -->\n", map[string]string{"x": "a"}, "2 lines"},
		{"end first", "<!-- x:end -->\n<!-- x:begin -->\n", map[string]string{"x": "a"}, "comes before"},
		{"not a line of its own", "see <!-- x:begin --> here\n<!-- x:end -->\n", map[string]string{"x": "a"}, `no line "<!-- x:begin -->"`},
		{"empty content", doc, map[string]string{"headline": "\n\n"}, "empty"},
		{"marker in content", doc, map[string]string{"headline": "<!-- sweep:end -->"}, "holds a section marker"},
		{"bad name", doc, map[string]string{"Head line": "a"}, "section name"},
		{"nothing", doc, map[string]string{}, "no section"},
		// One good section and one missing: nothing is replaced.
		{"one of two missing", doc, map[string]string{"headline": "a", "lab": "b"}, "section lab"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReplaceSections(tc.doc, tc.sections)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if got != "" {
				t.Fatalf("text returned with an error: %q", got)
			}
		})
	}
}

func TestCheckSections(t *testing.T) {
	if err := CheckSections(doc, []string{"headline", "sweep"}); err != nil {
		t.Fatal(err)
	}
	if err := CheckSections(doc, []string{"headline", "perturb"}); err == nil {
		t.Fatal("no error for a missing section")
	}
}

func TestReplaceFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "B.md")
	if err := os.WriteFile(path, []byte(doc), 0o640); err != nil {
		t.Fatal(err)
	}
	// A failure leaves the file as it was.
	if err := replaceFile(path, map[string]string{"headline": "new", "lab": "x"}); err == nil {
		t.Fatal("no error for a missing section")
	}
	if b, _ := os.ReadFile(path); string(b) != doc {
		t.Fatalf("file changed by a failed replacement:\n%s", b)
	}
	if err := replaceFile(path, map[string]string{"headline": "new"}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if !strings.Contains(string(b), "<!-- headline:begin -->\n\nnew\n\n<!-- headline:end -->") || strings.Contains(string(b), "old table") {
		t.Fatalf("not replaced:\n%s", b)
	}
	if info, _ := os.Stat(path); info.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v, want 0640", info.Mode().Perm())
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".B.md.*")); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

func TestRunReplace(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "B.md")
	content := filepath.Join(dir, "h.md")
	os.WriteFile(path, []byte(doc), 0o644)
	os.WriteFile(content, []byte("| new |\n"), 0o644)
	var stderr strings.Builder
	if _, err := run("replace", []string{"-check", "-file", path, "headline", "sweep"}, &stderr); err != nil {
		t.Fatal(err)
	}
	if _, err := run("replace", []string{"-check", "-file", path, "lab"}, &stderr); err == nil {
		t.Fatal("-check passed a missing section")
	}
	if _, err := run("replace", []string{"-file", path, "headline"}, &stderr); err == nil {
		t.Fatal("no error for an argument without =")
	}
	if _, err := run("replace", []string{"-file", path, "headline=" + filepath.Join(dir, "missing.md")}, &stderr); err == nil {
		t.Fatal("no error for a missing content file")
	}
	if _, err := run("replace", []string{"-file", path, "headline=" + content}, &stderr); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); !strings.Contains(string(b), "| new |") {
		t.Fatalf("not replaced:\n%s", b)
	}
}
