"""What a model is: a job request resolved against its dataset, the Keras model built from it,
and how a saved model is loaded and answers predictions. Only `builder`, `artifacts` and
`inference` import TensorFlow."""
