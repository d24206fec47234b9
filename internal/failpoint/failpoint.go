// Package failpoint is the test suite's one way to crash gosst's binaries
// at a chosen step, as a power cut or kill -9 would. It is compiled in only
// with the gosstfailpoint build tag, which the test suite alone uses:
// release builds carry none of its code, and in them no environment
// variable or anything else makes a step kill the process.
//
// In a build with the tag, Hit(step) SIGKILLs the process when the
// environment variable GOSST_FAILPOINT (Env) holds step.
package failpoint

// Env names the environment variable that arms a failpoint in builds with
// the gosstfailpoint tag. Release builds never read it.
const Env = "GOSST_FAILPOINT"
