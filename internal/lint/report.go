package lint

import (
	"encoding/json"
	"fmt"
	"io"
)

// WriteText prints one finding per line, as compilers do, then a count.
func WriteText(w io.Writer, fs []Finding) error {
	for _, f := range fs {
		where := f.Object
		if f.Container != "" {
			where += " container " + f.Container
		}
		if _, err := fmt.Fprintf(w, "%s: %s: %s [%s]: %s\n", f.Source, f.Severity, where, f.Rule, f.Message); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintln(w, Summary(fs))
	return err
}

// Summary is the last line of a report: "2 errors, 1 warning".
func Summary(fs []Finding) string {
	errs, warns := Count(fs)
	return plural(errs, "error") + ", " + plural(warns, "warning")
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// WriteJSON prints the findings as a JSON array (empty, not null, when
// there are none), for CI annotations.
func WriteJSON(w io.Writer, fs []Finding) error {
	if fs == nil {
		fs = []Finding{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(fs)
}

// Count returns the number of errors and warnings.
func Count(fs []Finding) (errs, warns int) {
	for _, f := range fs {
		if f.Severity == SeverityError {
			errs++
		} else {
			warns++
		}
	}
	return errs, warns
}
