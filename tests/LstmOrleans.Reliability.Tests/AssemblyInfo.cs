// The process-level tests start several silos each; running test classes side by side on a small machine would
// turn failure-detection timing into noise.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
