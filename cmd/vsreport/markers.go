package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// A generated section of a markdown file lies between two comment lines,
// <!-- NAME:begin --> and <!-- NAME:end -->, each on a line of its own;
// what lies between them is replaced whole.
func beginMarker(name string) string { return "<!-- " + name + ":begin -->" }
func endMarker(name string) string   { return "<!-- " + name + ":end -->" }

var sectionName = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)

// markerLine finds marker in doc as a whole line, once: its offset, or an
// error naming what is wrong.
func markerLine(doc, marker string) (int, error) {
	var at []int
	for off := 0; ; {
		i := strings.Index(doc[off:], marker)
		if i < 0 {
			break
		}
		i += off
		off = i + len(marker)
		startsLine := i == 0 || doc[i-1] == '\n'
		endsLine := off == len(doc) || doc[off] == '\n' || strings.HasPrefix(doc[off:], "\r\n")
		if startsLine && endsLine {
			at = append(at, i)
		}
	}
	switch len(at) {
	case 0:
		return 0, fmt.Errorf("no line %q", marker)
	case 1:
		return at[0], nil
	}
	return 0, fmt.Errorf("%d lines %q, want one", len(at), marker)
}

// ReplaceSections returns doc with the text between each section's
// markers replaced by its content (surrounded by a blank line each
// side). Every section's markers must be present, once each, begin
// before end; else it returns an error and no text.
func ReplaceSections(doc string, sections map[string]string) (string, error) {
	if len(sections) == 0 {
		return "", errors.New("no section to replace")
	}
	names := make([]string, 0, len(sections))
	for name := range sections {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if !sectionName.MatchString(name) {
			return "", fmt.Errorf("section name %q: want lower-case letters, digits and dashes", name)
		}
		b, err := markerLine(doc, beginMarker(name))
		if err != nil {
			return "", fmt.Errorf("section %s: %w", name, err)
		}
		e, err := markerLine(doc, endMarker(name))
		if err != nil {
			return "", fmt.Errorf("section %s: %w", name, err)
		}
		if e < b {
			return "", fmt.Errorf("section %s: %q comes before %q", name, endMarker(name), beginMarker(name))
		}
		content := strings.Trim(sections[name], "\n")
		if strings.Contains(content, "<!-- ") && (strings.Contains(content, ":begin -->") || strings.Contains(content, ":end -->")) {
			return "", fmt.Errorf("section %s: the new content holds a section marker", name)
		}
		if strings.TrimSpace(content) == "" {
			return "", fmt.Errorf("section %s: the new content is empty", name)
		}
		start := b + len(beginMarker(name))
		doc = doc[:start] + "\n\n" + content + "\n\n" + doc[e:]
	}
	return doc, nil
}

// CheckSections reports an error if a section's markers are missing,
// repeated or out of order.
func CheckSections(doc string, names []string) error {
	sections := make(map[string]string, len(names))
	for _, n := range names {
		sections[n] = "x"
	}
	_, err := ReplaceSections(doc, sections)
	return err
}

// replaceFile rewrites path with the sections replaced, through a
// temporary file renamed over it: a reader, or a failure, never leaves
// half a file.
func replaceFile(path string, sections map[string]string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	out, err := ReplaceSections(string(data), sections)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after the rename, nothing to remove
	if _, err := tmp.WriteString(out); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(info.Mode().Perm()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
