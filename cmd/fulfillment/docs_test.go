package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestDesignMapsEveryPackage keeps the package map that opens
// docs/design.md true: one line for every directory of Go code, and none
// for a directory that is gone.
func TestDesignMapsEveryPackage(t *testing.T) {
	design, err := os.ReadFile("../../docs/design.md")
	require.NoError(t, err)
	text := string(design)
	start := strings.Index(text, "## Packages")
	require.GreaterOrEqual(t, start, 0, "docs/design.md has a ## Packages section")
	section := text[start:]
	if end := strings.Index(section[len("## Packages"):], "\n## "); end >= 0 {
		section = section[:len("## Packages")+end]
	}
	var mapped []string
	for _, m := range regexp.MustCompile("(?m)^\\| `([^`]+)` \\|").FindAllStringSubmatch(section, -1) {
		mapped = append(mapped, m[1])
	}

	var packages []string
	root := "../.."
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() && path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "bin") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(name, ".go") {
			return nil
		}
		dir, err := filepath.Rel(root, filepath.Dir(path))
		if err == nil && dir != "." && !slices.Contains(packages, filepath.ToSlash(dir)) {
			packages = append(packages, filepath.ToSlash(dir))
		}
		return err
	})
	require.NoError(t, err)
	require.ElementsMatch(t, packages, mapped, "docs/design.md's package map must list exactly the directories of Go code")
}
