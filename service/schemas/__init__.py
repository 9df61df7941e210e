"""Request and response bodies: the OpenAPI contract, one module per resource.

common (pages, the error envelope), datasets, jobs, validation, models, diagnostics, inspection,
repeats, sweeps, webhooks; network is the network spec inside a job request, examples the
requests shown in the OpenAPI document.
"""
