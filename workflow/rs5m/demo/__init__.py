"""The embedded demo: its inputs (demo_metadata, rs3_demo_inputs, demo_detector_images), its tiny
models (rs3_tiny_models) and its loopback web server (web). Production modules never import it; the
demo plugs in through config."""
