"""The web console at /ui: server-rendered pages over the same use cases as the JSON API, signed in
with an API key held in an HttpOnly session cookie. Its script and style are files in `static/`."""
