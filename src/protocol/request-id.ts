/** What a request id may be (Request.rid): 1 to 128 of A-Z a-z 0-9 . _ : - */
export const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
