"""SmolLM2-135M on the simulated SOFA: the model (`model`) and its perplexity harness (`perplexity`)."""
