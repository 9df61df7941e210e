"""dendrite: a REST service that trains Keras networks on uploaded datasets."""
