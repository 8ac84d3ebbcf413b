/** Every failure this package reports on purpose is an IgrEdgeError (a bad bundle is its subclass BundleError). */
export class IgrEdgeError extends Error {
  constructor(message) {
    super(message);
    this.name = 'IgrEdgeError';
  }
}

export class BundleError extends IgrEdgeError {
  constructor(message) {
    super(message);
    this.name = 'BundleError';
  }
}
