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
	errs, warns := Count(fs)
	_, err := fmt.Fprintf(w, "%d errors, %d warnings\n", errs, warns)
	return err
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
