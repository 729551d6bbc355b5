package prestop

import "errors"

// ErrStepFailed is returned by Hook.Run when a required step failed or had
// no budget left; the summary says which and why. The command exits non-zero
// on it, so the kubelet records a FailedPreStopHook event.
var ErrStepFailed = errors.New("required steps not done")

// ErrNoState is returned by Restorer.Run with RestoreConfig.Require when the
// state API has nothing saved under the key.
var ErrNoState = errors.New("no saved state")

// ErrUnsafeArchive is returned by Restorer.Run when the saved tar has an
// entry that would land outside the target directory (an absolute name, a
// "..", a symlink pointing out) or is neither file, directory nor symlink.
// Nothing is moved into the directory then.
var ErrUnsafeArchive = errors.New("unsafe archive")
