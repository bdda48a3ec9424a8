package sidebyside

// knownDiff is a difference between Mosquitto and the gateway that we know
// of and accept for now: the transcript lines only Mosquitto's clients saw,
// those only the gateway's clients saw, and why. Any other difference, or
// this one gone, fails the scenario. Keep docs/BROKER.md ("Side by side
// with Mosquitto") in step.
type knownDiff struct {
	reason    string
	mosquitto []string
	gateway   []string
}

var knownDifferences = map[string]knownDiff{}
