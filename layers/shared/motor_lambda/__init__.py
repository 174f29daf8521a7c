"""The handlers' shared shell: Powertools set up one way, each function's settings, the decorator stack,
rejections, response models, and the wiring of the AWS adapters to the domain's use cases."""
